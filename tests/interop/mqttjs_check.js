// Interop check with MQTT.js (Node), MQTT 3.1.1, against a running ringmq:
// QoS 0/1/2 round trips, retained messages, a will published on an abrupt
// close, and a persistent session receiving QoS 1 messages queued while it
// was offline. Exits 1 on the first failure. Usage: node mqttjs_check.js PORT
'use strict';
const mqtt = require('mqtt');

const url = `mqtt://127.0.0.1:${process.argv[2]}`;
const run = Math.random().toString(16).slice(2, 10);
const TIMEOUT = 5000;

function fail(msg) {
  console.error(`FAIL (MQTT.js): ${msg}`);
  process.exit(1);
}

function withTimeout(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT)),
  ]);
}

async function connect(clientId, opts = {}) {
  // The message handler is attached before CONNACK: a persistent session's
  // queued messages arrive right behind it.
  const c = mqtt.connect(url, { clientId, protocolVersion: 4, reconnectPeriod: 0, ...opts });
  const inbox = [];
  const waiters = [];
  c.on('message', (topic, payload, packet) => {
    const m = { topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain };
    const w = waiters.shift();
    if (w) w(m); else inbox.push(m);
  });
  c.next = (what) => withTimeout(
    inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiters.push(resolve)),
    what,
  );
  await withTimeout(new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  }), `connect ${clientId}`);
  return c;
}

async function main() {
  // 1. QoS 0/1/2 round trips.
  const sub = await connect(`js-sub-${run}`);
  await sub.subscribeAsync(`interop/${run}/#`, { qos: 2 });
  const pub = await connect(`js-pub-${run}`);
  for (const qos of [0, 1, 2]) {
    await pub.publishAsync(`interop/${run}/q${qos}`, `hello-${qos}`, { qos });
    const m = await sub.next(`QoS ${qos} message`);
    if (m.topic !== `interop/${run}/q${qos}` || m.payload !== `hello-${qos}` || m.qos !== qos) {
      fail(`QoS ${qos}: got ${JSON.stringify(m)}`);
    }
  }

  // 2. Retained message for a later subscriber.
  await pub.publishAsync(`retained/${run}`, 'kept', { qos: 1, retain: true });
  const late = await connect(`js-late-${run}`);
  await late.subscribeAsync(`retained/${run}`, { qos: 1 });
  const r = await late.next('retained message');
  if (r.payload !== 'kept' || !r.retain) fail(`retained: got ${JSON.stringify(r)}`);
  await pub.publishAsync(`retained/${run}`, '', { qos: 1, retain: true });
  await late.endAsync();

  // 3. Will on an abrupt close.
  const dying = await connect(`js-dying-${run}`, {
    will: { topic: `interop/${run}/will`, payload: 'gone', qos: 1, retain: false },
  });
  dying.stream.destroy();
  const w = await sub.next('will message');
  if (w.topic !== `interop/${run}/will` || w.payload !== 'gone') fail(`will: got ${JSON.stringify(w)}`);
  await sub.endAsync();

  // 4. Persistent session: QoS 1 queued while offline.
  const cid = `js-offline-${run}`;
  const off = await connect(cid, { clean: false });
  await off.subscribeAsync(`user/${run}`, { qos: 1 });
  await off.endAsync();
  await new Promise((resolve) => setTimeout(resolve, 200));
  for (let i = 0; i < 3; i++) await pub.publishAsync(`user/${run}`, `queued-${i}`, { qos: 1 });
  const back = await connect(cid, { clean: false });
  const got = [];
  for (let i = 0; i < 3; i++) got.push((await back.next(`queued message ${i}`)).payload);
  if (got.join(',') !== 'queued-0,queued-1,queued-2') fail(`persistent session: got ${got}`);
  await back.endAsync();
  await pub.endAsync();
  console.log('ok: MQTT.js (MQTT 3.1.1)');
  process.exit(0);
}

main().catch((e) => fail(e.message));
