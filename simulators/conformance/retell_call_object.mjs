// retell_call_object.mjs - checks the Retell simulator's call object against the official
// retell-sdk's own declaration of it (PhoneCallResponse in resources/call.d.ts): every field
// the SDK declares required is there, every field the simulator sends is one the SDK
// declares (top level, call_cost, latency, transcript_object), disconnection_reason is one
// of its values; through get-call (the SDK's call.retrieve), create-phone-call and the
// call_started / call_ended / call_analyzed webhooks (verified with Retell.verify).
//
// usage: node retell_call_object.mjs SIMULATORS_BINARY   (run where `npm install
// retell-sdk` was done; exits 0 when every check passed, 1 otherwise).
import { spawn } from 'node:child_process';
import { readFileSync, existsSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Retell from 'retell-sdk';

const bin = process.argv[2];
if (!bin) {
  console.error('usage: node retell_call_object.mjs SIMULATORS_BINARY');
  process.exit(2);
}
let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok || !detail ? '' : ': ' + detail}`);
};

// ---- the SDK's declaration ------------------------------------------------------------
const require = createRequire(import.meta.url);
// The package's directory: its entry point's (package.json is not an export of it).
let sdkDir = dirname(require.resolve('retell-sdk'));
while (!existsSync(join(sdkDir, 'package.json')) && dirname(sdkDir) !== sdkDir) sdkDir = dirname(sdkDir);
const dts = readFileSync(join(sdkDir, 'resources', 'call.d.ts'), 'utf8');
const sdkVersion = JSON.parse(readFileSync(join(sdkDir, 'package.json'), 'utf8')).version;

// The fields of `interface NAME {` at the given indentation: {name: required?}.
function fieldsOf(name, indent) {
  const pad = ' '.repeat(indent);
  const start = dts.indexOf(`${pad}interface ${name} {`);
  if (start < 0) throw new Error(`retell-sdk ${sdkVersion}: no interface ${name} in call.d.ts`);
  const end = dts.indexOf(`\n${pad}}`, start);
  const body = dts.slice(start, end);
  const out = {};
  const re = new RegExp(`^${pad}    ([a-z_0-9]+)(\\??):`, 'gm');
  for (let m; (m = re.exec(body));) out[m[1]] = m[2] !== '?';
  return out;
}
const top = fieldsOf('PhoneCallResponse', 0);
const cost = fieldsOf('CallCost', 4);
const latency = fieldsOf('Latency', 4);
const utterance = fieldsOf('TranscriptObject', 4);
const word = fieldsOf('Word', 8);
const reasons = (() => {
  const at = dts.indexOf('disconnection_reason?:', dts.indexOf('interface PhoneCallResponse {'));
  const decl = dts.slice(at, dts.indexOf(';', at));
  return [...decl.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]);
})();

// Every required field present, no undeclared one.
function conforms(what, obj, fields) {
  const missing = Object.keys(fields).filter((k) => fields[k] && !(k in obj));
  const extra = Object.keys(obj).filter((k) => !(k in fields));
  check(`${what}: the SDK's required fields, nothing it does not declare`,
        missing.length === 0 && extra.length === 0,
        `missing [${missing}], not in retell-sdk ${sdkVersion} [${extra}]`);
}

function conformsCall(what, call, ended) {
  conforms(what, call, top);
  if (call.disconnection_reason !== undefined)
    check(`${what}: disconnection_reason is one the SDK lists`,
          reasons.includes(call.disconnection_reason), call.disconnection_reason);
  if (!ended) {
    const after = ['transcript_object', 'recording_url', 'call_cost', 'latency', 'public_log_url'];
    check(`${what}: no after-the-end field before the end`, after.every((k) => !(k in call)),
          after.filter((k) => k in call).join(','));
    return;
  }
  conforms(`${what} call_cost`, call.call_cost, cost);
  for (const p of call.call_cost.product_costs)
    check(`${what} call_cost: product ${p.product} has cost and product`,
          typeof p.cost === 'number' && typeof p.product === 'string');
  const sum = call.call_cost.product_costs.reduce((s, p) => s + p.cost, 0);
  check(`${what} call_cost: combined_cost is the sum of the products`,
        Math.abs(sum - call.call_cost.combined_cost) < 1e-6, `${sum} vs ${call.call_cost.combined_cost}`);
  conforms(`${what} latency`, Object.fromEntries(Object.keys(call.latency).map((k) => [k, 1])),
           Object.fromEntries(Object.keys(latency).map((k) => [k, false])));
  // Every utterance and every word, as one check each.
  const bad = (obj, fields) => Object.keys(fields).some((k) => fields[k] && !(k in obj)) ||
                               Object.keys(obj).some((k) => !(k in fields));
  const us = call.transcript_object;
  check(`${what} transcript_object: ${us.length} utterances as the SDK declares them`,
        us.length > 0 && !us.some((u) => bad(u, utterance)), JSON.stringify(us[0]));
  check(`${what} transcript_object: every word as the SDK declares it`,
        !us.some((u) => u.words.some((w) => bad(w, word))), JSON.stringify(us[0].words[0]));
  const text = call.transcript_object.map((u) => `${u.role === 'agent' ? 'Agent' : 'User'}: ${u.content}\n`).join('');
  check(`${what}: transcript_object says what transcript says`, text === call.transcript,
        JSON.stringify([text, call.transcript]));
}

// ---- the simulator ----------------------------------------------------------------------
const waitFor = async (cond, ms, what) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};
const dir = mkdtempSync(join(tmpdir(), 'retellconf-'));
const ready = join(dir, 'ready.json');
const sim = spawn(bin, ['--ready-file', ready, '--log-level', 'warn'], { stdio: 'inherit' });
const got = [];
const recv = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    res.statusCode = 204;
    res.end();
  });
});
try {
  const ports = await waitFor(() => existsSync(ready) && JSON.parse(readFileSync(ready, 'utf8')),
                              10000, 'the ready file');
  const ctl = async (method, path, body) => {
    const r = await fetch(`http://127.0.0.1:${ports.control}${path}`,
                          { method, body: body && JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : null };
  };
  await new Promise((r) => recv.listen(0, '127.0.0.1', r));
  check(`retell-sdk ${sdkVersion} declares ${Object.keys(top).length} call fields, ` +
        `${reasons.length} disconnection reasons`, Object.keys(top).length > 20 && reasons.length > 10);
  const retell = new Retell({ apiKey: 'key_sim_retell', baseURL: `http://127.0.0.1:${ports.retell}` });

  const made = await ctl('POST', '/control/retell/calls', { call_id: 'call_obj', metadata: { k: 'v' } });
  check('control: an ended call is created', made.status === 201, JSON.stringify(made.json));
  conformsCall('get-call (call.retrieve) of an ended call', await retell.call.retrieve('call_obj'), true);
  const reg = await retell.call.createPhoneCall({ from_number: '+14155550100', to_number: '+14155550111' });
  conformsCall('createPhoneCall', reg, false);
  conformsCall('get-call of a registered call', await retell.call.retrieve(reg.call_id), false);

  await ctl('PUT', '/control/retell/webhook', { url: `http://127.0.0.1:${recv.address().port}/` });
  await ctl('POST', '/control/retell/calls/call_obj/webhook', { event: 'lifecycle' });
  await waitFor(() => got.length >= 3, 10000, 'three webhooks');
  const seen = {};
  for (const g of got) {
    const ok = await Retell.verify(g.body, 'key_sim_retell', g.headers['x-retell-signature']);
    const ev = JSON.parse(g.body);
    check(`webhook ${ev.event}: Retell.verify accepts it`, ok === true);
    seen[ev.event] = ev.call;
  }
  conformsCall('call_started webhook', seen.call_started, false);
  check('call_started: the call is ongoing, no call_analysis',
        seen.call_started.call_status === 'ongoing' && !('call_analysis' in seen.call_started));
  conformsCall('call_ended webhook', seen.call_ended, true);
  check('call_ended: no call_analysis yet', !('call_analysis' in seen.call_ended));
  conformsCall('call_analyzed webhook', seen.call_analyzed, true);
  check('call_analyzed: call_analysis', typeof seen.call_analyzed.call_analysis === 'object');
} catch (e) {
  check('no unexpected exception', false, e.stack);
} finally {
  sim.kill('SIGTERM');
  recv.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
