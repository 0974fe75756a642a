// sdk_conformance.mjs - drives a running simulators process with the providers' official
// SDKs from npm (stripe, retell-sdk): the SDKs must map our errors to their error classes,
// retry idempotently through our faults, and verify our webhooks with their own verify.
//
// usage: node sdk_conformance.mjs SIMULATORS_BINARY   (run where `npm install stripe
// retell-sdk` was done; exits 0 when every check passed, 1 otherwise; prints one line per
// check and a closing "N passed, N failed").
import { spawn } from 'node:child_process';
import { readFileSync, existsSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Stripe from 'stripe';
import Retell from 'retell-sdk';

const bin = process.argv[2];
if (!bin) {
  console.error('usage: node sdk_conformance.mjs SIMULATORS_BINARY');
  process.exit(2);
}
let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok || !detail ? '' : ': ' + detail}`);
};
const deadline = (ms) => Date.now() + ms;
async function waitFor(cond, ms, what) {
  const end = deadline(ms);
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'simconf-'));
const ready = join(dir, 'ready.json');
const sim = spawn(bin, ['--ready-file', ready, '--log-level', 'warn'], { stdio: 'inherit' });
const ports = await waitFor(() => existsSync(ready) && JSON.parse(readFileSync(ready, 'utf8')),
                            10000, 'the ready file');
const control = `http://127.0.0.1:${ports.control}`;
const ctl = async (method, path, body) => {
  const r = await fetch(control + path, { method, body: body && JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
};

// A receiver for webhooks: keeps raw bodies and headers.
const got = [];
const recv = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    got.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    res.statusCode = 204;
    res.end();
  });
});
await new Promise((r) => recv.listen(0, '127.0.0.1', r));
const hook = `http://127.0.0.1:${recv.address().port}`;

try {
  // ---- Stripe --------------------------------------------------------------------------
  const stripe = new Stripe('sk_test_sim', { host: '127.0.0.1', port: ports.stripe,
                                             protocol: 'http', maxNetworkRetries: 2 });
  const pi = await stripe.paymentIntents.create({ amount: 1500, currency: 'eur',
                                                  metadata: { call: 'c1' } });
  check('stripe: create answers a succeeded PaymentIntent', pi.status === 'succeeded' &&
        pi.metadata.call === 'c1', JSON.stringify(pi));
  try {
    await stripe.paymentIntents.create({ amount: 500, currency: 'eur',
                                         payment_method: 'pm_card_chargeDeclinedInsufficientFunds' });
    check('stripe: a declined card is a StripeCardError', false, 'no error');
  } catch (e) {
    check('stripe: a declined card is a StripeCardError', e instanceof Stripe.errors.StripeCardError &&
          e.decline_code === 'insufficient_funds' && e.statusCode === 402, `${e.type} ${e.decline_code}`);
  }
  const a = await stripe.paymentIntents.create({ amount: 700, currency: 'eur' },
                                               { idempotencyKey: 'conf-1' });
  const b = await stripe.paymentIntents.create({ amount: 700, currency: 'eur' },
                                               { idempotencyKey: 'conf-1' });
  check('stripe: the same idempotency key replays the first intent', a.id === b.id);
  try {
    await stripe.paymentIntents.create({ amount: 701, currency: 'eur' }, { idempotencyKey: 'conf-1' });
    check('stripe: other parameters are a StripeIdempotencyError', false, 'no error');
  } catch (e) {
    check('stripe: other parameters are a StripeIdempotencyError',
          e instanceof Stripe.errors.StripeIdempotencyError, e.type);
  }
  try {
    await stripe.paymentIntents.retrieve('pi_missing');
    check('stripe: a missing intent is a StripeInvalidRequestError', false, 'no error');
  } catch (e) {
    check('stripe: a missing intent is a StripeInvalidRequestError',
          e instanceof Stripe.errors.StripeInvalidRequestError && e.code === 'resource_missing', e.type);
  }
  // stripe-node retries a 503 and a reset with the same key; one charge results.
  await ctl('POST', '/control/faults', { provider: 'stripe', route: 'POST /v1/payment_intents',
    sequence: [{ times: 1, status: 503 }, { times: 1, socket: 'reset' }] });
  const r = await stripe.paymentIntents.create({ amount: 900, currency: 'usd' },
                                               { idempotencyKey: 'conf-retry' });
  const eff = await ctl('GET', '/control/effects?provider=stripe&kind=charge');
  const charges = eff.json.effects.filter((x) => x.idempotency_key === 'conf-retry');
  const j = await ctl('GET', '/control/journal?provider=stripe&route=POST%20/v1/payment_intents');
  const tries = j.json.entries.filter((x) => x.headers['Idempotency-Key'] === 'conf-retry');
  check('stripe-node retries through a 503 and a reset, one charge', r.status === 'succeeded' &&
        charges.length === 1 && tries.length === 3, `charges ${charges.length}, tries ${tries.length}`);
  await ctl('DELETE', '/control/faults');
  // Signed events verify with stripe.webhooks.constructEvent, also during rotation.
  await ctl('PUT', '/control/stripe/webhook', { url: hook + '/stripe', extra_secrets: ['whsec_old'] });
  const ev = await stripe.paymentIntents.create({ amount: 1200, currency: 'eur' });
  const d = await waitFor(() => got.find((g) => g.path === '/stripe'), 5000, 'a Stripe event');
  let ok = true;
  for (const secret of ['whsec_sim_secret', 'whsec_old']) {
    try {
      const e = stripe.webhooks.constructEvent(d.body, d.headers['stripe-signature'], secret);
      ok = ok && e.type === 'payment_intent.succeeded' && e.data.object.id === ev.id;
    } catch (e) { ok = false; console.log(`  ${secret}: ${e.message}`); }
  }
  check('stripe: events verify with constructEvent under both secrets', ok);

  // ---- Retell --------------------------------------------------------------------------
  const retell = new Retell({ apiKey: 'key_sim_retell', baseURL: `http://127.0.0.1:${ports.retell}` });
  const made = await retell.call.createPhoneCall({ from_number: '+14155550100',
                                                   to_number: '+14155550111' });
  check('retell-sdk: createPhoneCall answers a registered call', made.call_status === 'registered');
  const fetched = await retell.call.retrieve(made.call_id);
  check('retell-sdk: retrieve answers the call', fetched.call_id === made.call_id);
  const list = await retell.call.list({ limit: 1 });
  check('retell-sdk: list answers items', Array.isArray(list) ? list.length === 1 :
        Array.isArray(list.items), JSON.stringify(list).slice(0, 120));
  try {
    await new Retell({ apiKey: 'wrong', baseURL: `http://127.0.0.1:${ports.retell}`,
                       maxRetries: 0 }).call.retrieve(made.call_id);
    check('retell-sdk: a wrong key is an AuthenticationError', false, 'no error');
  } catch (e) {
    check('retell-sdk: a wrong key is an AuthenticationError', e.status === 401, String(e));
  }
  await ctl('PUT', '/control/retell/webhook', { url: hook + '/retell' });
  await ctl('POST', '/control/retell/calls', { call_id: 'call_conf' });
  await ctl('POST', '/control/retell/calls/call_conf/webhook', { event: 'call_analyzed' });
  await ctl('POST', '/control/retell/calls/call_conf/webhook', { event: 'call_analyzed', forge: true,
                                                                retries: 0 });
  const rd = got.filter((g) => g.path === '/retell');
  const good = await Retell.verify(rd[0].body, 'key_sim_retell', rd[0].headers['x-retell-signature']);
  const forged = await Retell.verify(rd[1].body, 'key_sim_retell', rd[1].headers['x-retell-signature']);
  check('retell-sdk: Retell.verify accepts our signature and refuses a forged one',
        good === true && forged === false, `good ${good}, forged ${forged}`);
} catch (e) {
  check('no unexpected exception', false, e.stack);
} finally {
  sim.kill('SIGTERM');
  recv.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
