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
  // confirm defaults to false: a charge needs confirm and a payment method.
  const card = { payment_method: 'pm_card_visa', confirm: true };
  const pi = await stripe.paymentIntents.create({ amount: 1500, currency: 'eur', ...card,
                                                  metadata: { call: 'c1' } });
  check('stripe: create with confirm answers a succeeded PaymentIntent', pi.status === 'succeeded' &&
        pi.metadata.call === 'c1', JSON.stringify(pi));
  try {
    await stripe.paymentIntents.create({ amount: 500, currency: 'eur', confirm: true,
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
  const r = await stripe.paymentIntents.create({ amount: 900, currency: 'usd', ...card },
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
  const ev = await stripe.paymentIntents.create({ amount: 1200, currency: 'eur', ...card });
  const d = await waitFor(() => got.find((g) => g.path === '/stripe'), 5000, 'a Stripe event');
  let ok = true;
  for (const secret of ['whsec_sim_secret', 'whsec_old']) {
    try {
      const e = stripe.webhooks.constructEvent(d.body, d.headers['stripe-signature'], secret);
      ok = ok && e.type === 'payment_intent.succeeded' && e.data.object.id === ev.id;
    } catch (e) { ok = false; console.log(`  ${secret}: ${e.message}`); }
  }
  check('stripe: events verify with constructEvent under both secrets', ok);

  // ---- Stripe as strict as Stripe (docs/providers-stripe.md) ----------------------------
  // Each call must fail with the SDK's own error class and Stripe's code and param.
  const fails = async (name, call, cls, want) => {
    try {
      const v = await call();
      check(name, false, `no error: ${JSON.stringify(v).slice(0, 160)}`);
    } catch (e) {
      const bad = Object.entries(want).filter(([k, v]) => e[k] !== v);
      check(name, e instanceof cls && bad.length === 0,
            `${e.constructor.name} ${e.statusCode} ${e.code} ${e.param}: ${e.message}`);
    }
  };
  const IR = Stripe.errors.StripeInvalidRequestError;
  await fails('stripe: an unknown parameter is parameter_unknown',
    () => stripe.paymentIntents.create({ amount: 1000, currency: 'eur', colour: 'red' }), IR,
    { statusCode: 400, code: 'parameter_unknown', param: 'colour' });
  await fails('stripe: payment_method_types is unknown under the SDK\'s API version',
    () => stripe.paymentIntents.create({ amount: 1000, currency: 'eur',
                                         payment_method_types: ['card'] }), IR,
    { code: 'parameter_unknown', param: 'payment_method_types' });
  await fails('stripe: a missing amount is parameter_missing',
    () => stripe.paymentIntents.create({ currency: 'eur' }), IR,
    { code: 'parameter_missing', param: 'amount' });
  await fails('stripe: 49 cents is amount_too_small',
    () => stripe.paymentIntents.create({ amount: 49, currency: 'usd' }), IR,
    { code: 'amount_too_small', param: 'amount' });
  await fails('stripe: an unsupported currency is refused',
    () => stripe.paymentIntents.create({ amount: 1000, currency: 'xyz' }), IR,
    { statusCode: 400, param: 'currency' });
  await fails('stripe: a bad enum value is refused',
    () => stripe.paymentIntents.create({ amount: 1000, currency: 'eur', capture_method: 'later' }),
    IR, { param: 'capture_method' });
  const waiting = await stripe.paymentIntents.create({ amount: 1000, currency: 'eur' });
  check('stripe: without confirm nothing is charged', waiting.status === 'requires_payment_method' &&
        waiting.amount_received === 0, waiting.status);
  await fails('stripe: confirm without a payment method is payment_intent_unexpected_state',
    () => stripe.paymentIntents.confirm(waiting.id), IR,
    { code: 'payment_intent_unexpected_state', param: 'payment_method' });
  await fails('stripe: capturing an unconfirmed intent is payment_intent_unexpected_state',
    () => stripe.paymentIntents.capture(waiting.id), IR,
    { code: 'payment_intent_unexpected_state' });
  const confirmed = await stripe.paymentIntents.confirm(waiting.id,
                                                       { payment_method: 'pm_card_visa' });
  check('stripe: confirm with a payment method succeeds', confirmed.status === 'succeeded');
  await fails('stripe: an unknown route is a 404 StripeInvalidRequestError',
    () => stripe.rawRequest('GET', '/v1/customers', {}), IR, { statusCode: 404 });
  await fails('stripe: a wrong key is a StripeAuthenticationError',
    () => new Stripe('sk_test_wrong', { host: '127.0.0.1', port: ports.stripe, protocol: 'http',
                                        maxNetworkRetries: 0 }).paymentIntents.list(),
    Stripe.errors.StripeAuthenticationError, { statusCode: 401 });
  await fails('stripe: an unknown Stripe-Version is refused',
    () => new Stripe('sk_test_sim', { host: '127.0.0.1', port: ports.stripe, protocol: 'http',
                                      apiVersion: '2024-13-45' }).paymentIntents.list(), IR,
    { statusCode: 400, message: 'Invalid Stripe API version: 2024-13-45' });
  await fails('stripe: a limit over 100 is refused',
    () => stripe.paymentIntents.list({ limit: 101 }), IR, { param: 'limit' });

  // Lists: stripe-node's auto-pagination walks every page with starting_after, and
  // backwards with ending_before.
  const listed = [];
  for (let i = 0; i < 23; i++)
    listed.push((await stripe.paymentIntents.create({ amount: 1000 + i, currency: 'eur' })).id);
  const listCalls = async () => (await ctl('GET',
    '/control/journal?provider=stripe&route=GET%20/v1/payment_intents')).json.entries.length;
  const before = await listCalls();
  const seen = [];
  for await (const x of stripe.paymentIntents.list({ limit: 5 })) seen.push(x.id);
  const total = (await stripe.paymentIntents.list({ limit: 100 })).data.length;
  check('stripe-node auto-pagination walks every page, newest first, no repeats',
        seen.length === total && new Set(seen).size === seen.length &&
        seen.slice(0, 23).join() === [...listed].reverse().join(),
        `${seen.length} of ${total}`);
  const pagesAsked = (await listCalls()) - before - 1; /* less the limit-100 count above */
  check('stripe-node fetched the pages one by one', pagesAsked === Math.ceil(total / 5),
        `${pagesAsked} pages for ${total} intents`);
  const back = await stripe.paymentIntents.list({ limit: 4, ending_before: listed[0] })
    .autoPagingToArray({ limit: 100 });
  check('stripe-node pages backwards with ending_before', back.length === 22 &&
        back.map((x) => x.id).join() === listed.slice(1).join(), `${back.length}`);
  const refund = await stripe.refunds.create({ payment_intent: pi.id, amount: 500 });
  const refunds = await stripe.refunds.list({ payment_intent: pi.id });
  check('stripe: refunds.list filters by payment_intent', refunds.object === 'list' &&
        refunds.data.length === 1 && refunds.data[0].id === refund.id);
  const evs = await stripe.events.list({ type: 'payment_intent.succeeded', limit: 3 });
  const one = await stripe.events.retrieve(evs.data[0].id);
  check('stripe: events.list and events.retrieve', evs.has_more === true &&
        evs.data.every((x) => x.type === 'payment_intent.succeeded') &&
        one.id === evs.data[0].id && one.object === 'event', JSON.stringify(evs).slice(0, 160));

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
