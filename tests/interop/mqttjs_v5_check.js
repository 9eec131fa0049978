// Interop check with MQTT.js 5 (Node), MQTT 5 (protocolVersion 5), against a
// running ringmq, following docs/mqtt5.md: CONNACK properties, publish
// properties round trip, topic aliases both ways, subscription identifiers,
// No Local, Retain Handling, a persistent session with Session Expiry, a
// delayed will, session takeover, and v4 and v5 clients mixed.
// Each check is a function; they run in order and the script exits 1 on the
// first failure, naming the check and what was wrong.
// Usage: node mqttjs_v5_check.js PORT [CHECK ...] [-CHECK ...]
//   (names select checks, -name skips one; see CHECKS at the end;
//   --names lists them)
//   RECEIVE_MAXIMUM / TOPIC_ALIAS_MAXIMUM in the environment: the broker's
//   values (default: ringmq's 1024 / 1024).
'use strict';
const mqtt = require('mqtt');

const url = `mqtt://127.0.0.1:${process.argv[2]}`;
const run = Math.random().toString(16).slice(2, 10);
const TIMEOUT = 5000;
const RECEIVE_MAXIMUM = Number(process.env.RECEIVE_MAXIMUM || 1024);
const TOPIC_ALIAS_MAXIMUM = Number(process.env.TOPIC_ALIAS_MAXIMUM || 1024);

class CheckFailed extends Error {}

function fail(msg) {
  throw new CheckFailed(msg);
}

// Compares as JSON (so key order counts: user properties keep their order).
function eq(what, got, want) {
  if (show(got) !== show(want)) fail(`${what}: got ${show(got)}, expected ${show(want)}`);
}

function show(v) {
  return JSON.stringify(v, (_k, x) => (x && x.type === 'Buffer' ? `<hex ${Buffer.from(x.data).toString('hex')}>` : x));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, what, ms = TIMEOUT) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new CheckFailed(`timed out: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// A connected client with an inbox of { topic, payload, qos, retain,
// properties } and a log of raw PUBLISH packets as received (before MQTT.js
// resolves topic aliases).
async function connect(clientId, opts = {}) {
  const c = mqtt.connect(url, { clientId, protocolVersion: 5, reconnectPeriod: 0, ...opts });
  c.cid = clientId;
  const inbox = [];
  const waiters = [];
  c.raw = [];
  c.disconnects = [];
  c.on('packetreceive', (p) => {
    if (p.cmd === 'publish') {
      c.raw.push({ topic: p.topic.toString(), alias: p.properties && p.properties.topicAlias });
    }
  });
  c.on('disconnect', (p) => c.disconnects.push(p));
  c.on('message', (topic, payload, packet) => {
    const m = {
      topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain,
      properties: packet.properties || {},
    };
    const w = waiters.shift();
    if (w) w(m); else inbox.push(m);
  });
  c.next = (what, ms = TIMEOUT) => {
    if (inbox.length) return Promise.resolve(inbox.shift());
    let resolver;
    const p = new Promise((resolve) => { resolver = resolve; waiters.push(resolve); });
    return withTimeout(p, `${clientId}: ${what}${gone(c)}`, ms).catch((e) => {
      const i = waiters.indexOf(resolver);
      if (i >= 0) waiters.splice(i, 1);
      throw e;
    });
  };
  c.expect = async (what, payload) => {
    const m = await c.next(what);
    if (m.payload !== payload) fail(`${clientId}: ${what}: got ${show(m)}, expected payload ${payload}`);
    return m;
  };
  c.quiet = async (ms, what) => {
    await sleep(ms);
    if (inbox.length) fail(`${clientId}: ${what}, but got ${show(inbox[0])}`);
  };
  c.connack = await withTimeout(new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  }), `connect ${clientId}`).catch((e) => {
    c.end(true);
    if (e instanceof CheckFailed) throw e;
    const code = e.code !== undefined ? ` (reason code 0x${Number(e.code).toString(16)})` : '';
    throw new CheckFailed(`${clientId}: connect failed: ${e.message}${code}`);
  });
  c.on('error', () => {});
  return c;
}

function gone(c) {
  return c.disconnects.length ? ` (the broker sent DISCONNECT 0x${c.disconnects[0].reasonCode.toString(16)})` : '';
}

async function sub(c, topic, opts = { qos: 1 }) {
  const granted = await withTimeout(c.subscribeAsync(topic, opts), `${c.cid}: SUBACK for ${topic}`);
  const want = (Array.isArray(topic) ? topic : [topic]).map(() => opts.qos);
  eq(`${c.cid}: SUBACK for ${topic}`, granted.map((g) => g.qos), want);
}

const pub = (c, topic, payload, opts) =>
  withTimeout(c.publishAsync(topic, payload, opts), `${c.cid}: acknowledgement of publish to ${topic}${gone(c)}`);

const end = (...clients) => Promise.all(clients.map((c) => withTimeout(c.endAsync(), `${c.cid}: end`)));

// --------------------------------------------------------------------------
// Checks

async function connackProperties() {
  const c = await connect(`js5-connack-${run}`, { properties: { sessionExpiryInterval: 30 } });
  const p = c.connack.properties || {};
  eq('CONNACK reason code', c.connack.reasonCode, 0);
  eq('CONNACK Receive Maximum', p.receiveMaximum, RECEIVE_MAXIMUM);
  eq('CONNACK Topic Alias Maximum', p.topicAliasMaximum, TOPIC_ALIAS_MAXIMUM || undefined);
  eq('CONNACK Maximum QoS (absent when 2)', p.maximumQoS, undefined);
  for (const k of ['retainAvailable', 'wildcardSubscriptionAvailable', 'subscriptionIdentifiersAvailable',
    'sharedSubscriptionAvailable']) {
    if (p[k] !== undefined && p[k] !== true) fail(`CONNACK ${k} is ${p[k]}, expected true or absent`);
  }
  eq('CONNACK Session Expiry Interval (30 is not above the cap)', p.sessionExpiryInterval, undefined);
  await end(c);
}

const USER = { a: '1', dup: ['2', '3'], 'ünï': 'çødé', empty: '' };

async function propertiesRoundTrip() {
  const s = await connect(`js5-props-sub-${run}`);
  await sub(s, `jsprops/${run}/#`, { qos: 2 });
  const p = await connect(`js5-props-pub-${run}`);
  const corr = Buffer.from([0, 1, 2, 0xff, 0x41]);
  for (const qos of [0, 1, 2]) {
    const topic = `jsprops/${run}/q${qos}`;
    await pub(p, topic, `payload-${qos}`, {
      qos,
      properties: {
        payloadFormatIndicator: true, contentType: 'application/json',
        responseTopic: `jsreply/${run}`, correlationData: corr, userProperties: USER,
      },
    });
    const m = await s.expect(`QoS ${qos} message with properties`, `payload-${qos}`);
    eq(`QoS ${qos} topic`, m.topic, topic);
    eq(`QoS ${qos} qos`, m.qos, qos);
    const got = m.properties;
    eq(`QoS ${qos} payloadFormatIndicator`, got.payloadFormatIndicator, true);
    eq(`QoS ${qos} contentType`, got.contentType, 'application/json');
    eq(`QoS ${qos} responseTopic`, got.responseTopic, `jsreply/${run}`);
    eq(`QoS ${qos} correlationData`, Buffer.from(got.correlationData || []).toString('hex'), corr.toString('hex'));
    eq(`QoS ${qos} userProperties (in order)`, Object.entries(got.userProperties || {}), Object.entries(USER));
    eq(`QoS ${qos} messageExpiryInterval (none published)`, got.messageExpiryInterval, undefined);
    if (got.topicAlias !== undefined) fail(`QoS ${qos}: topic alias to a client that allowed none: ${show(m)}`);
  }
  await end(s, p);
}

async function topicAliasFromClient() {
  const s = await connect(`js5-ta-sub-${run}`);
  await sub(s, `jsalias/${run}/#`);
  const p = await connect(`js5-ta-pub-${run}`);
  // Explicit aliases: define 1 and 2, use them alone, re-map 1.
  await pub(p, `jsalias/${run}/one`, 'a', { qos: 1, properties: { topicAlias: 1 } });
  await pub(p, `jsalias/${run}/two`, 'b', { qos: 1, properties: { topicAlias: 2 } });
  await pub(p, '', 'c', { qos: 1, properties: { topicAlias: 1 } });
  await pub(p, '', 'd', { qos: 0, properties: { topicAlias: 2 } });
  await pub(p, `jsalias/${run}/three`, 'e', { qos: 1, properties: { topicAlias: 1 } });
  await pub(p, '', 'f', { qos: 2, properties: { topicAlias: 1 } });
  for (const [payload, t] of [['a', 'one'], ['b', 'two'], ['c', 'one'], ['d', 'two'], ['e', 'three'], ['f', 'three']]) {
    const m = await s.expect(`message ${payload} published with a topic alias`, payload);
    eq(`topic of message ${payload}`, m.topic, `jsalias/${run}/${t}`);
  }
  await end(p);
  // MQTT.js assigning aliases itself.
  const auto = await connect(`js5-ta-auto-${run}`, { autoAssignTopicAlias: true });
  for (let i = 0; i < 6; i++) await pub(auto, `jsalias/${run}/auto/${i % 2}`, `auto-${i}`, { qos: 1 });
  for (let i = 0; i < 6; i++) {
    const m = await s.expect(`message auto-${i} (autoAssignTopicAlias)`, `auto-${i}`);
    eq(`topic of auto-${i}`, m.topic, `jsalias/${run}/auto/${i % 2}`);
  }
  await end(auto, s);
}

async function topicAliasToClient() {
  // The broker gives the first N distinct topics an alias for a client that
  // allows N: the topic once with the alias, then the alias alone.
  const s = await connect(`js5-tac-sub-${run}`, { properties: { topicAliasMaximum: 2 } });
  await sub(s, `jstac/${run}/#`);
  const p = await connect(`js5-tac-pub-${run}`);
  const order = ['t0', 't1', 't0', 't2', 't1', 't2', 't0'];
  for (let i = 0; i < order.length; i++) await pub(p, `jstac/${run}/${order[i]}`, `m${i}`, { qos: 1 });
  for (let i = 0; i < order.length; i++) {
    const m = await s.expect(`message m${i}`, `m${i}`);
    eq(`topic of m${i} (resolved by MQTT.js)`, m.topic, `jstac/${run}/${order[i]}`);
  }
  const raw = s.raw.slice(-order.length);
  const a0 = raw[0].alias;
  const a1 = raw[1].alias;
  if (!(a0 >= 1 && a0 <= 2 && a1 >= 1 && a1 <= 2 && a0 !== a1)) {
    fail(`first two distinct topics should get aliases 1..2: raw PUBLISHes ${show(raw)}`);
  }
  const want = [
    { topic: `jstac/${run}/t0`, alias: a0 }, { topic: `jstac/${run}/t1`, alias: a1 }, { topic: '', alias: a0 },
    { topic: `jstac/${run}/t2`, alias: undefined }, { topic: '', alias: a1 }, { topic: `jstac/${run}/t2`, alias: undefined },
    { topic: '', alias: a0 },
  ];
  eq('raw PUBLISH topics and aliases with Topic Alias Maximum 2', raw, want);
  await end(s, p);
}

async function subscriptionIdentifiers() {
  const s = await connect(`js5-sid-${run}`);
  await sub(s, `jssid/${run}/#`, { qos: 1, properties: { subscriptionIdentifier: 42 } });
  await sub(s, `jssid/${run}/+/x`, { qos: 1, properties: { subscriptionIdentifier: 16384 } });
  const p = await connect(`js5-sid-pub-${run}`);
  await pub(p, `jssid/${run}/a`, 'one', { qos: 1 });
  let m = await s.expect('message for subscription 42', 'one');
  eq('subscriptionIdentifier', m.properties.subscriptionIdentifier, 42);
  await pub(p, `jssid/${run}/a/x`, 'two', { qos: 1 });
  m = await s.expect('message for subscriptions 42 and 16384', 'two');
  const ids = [].concat(m.properties.subscriptionIdentifier).sort((x, y) => x - y);
  eq('subscriptionIdentifier for two matching subscriptions (one copy)', ids, [42, 16384]);
  await s.quiet(400, 'one copy expected for two matching subscriptions');
  await end(s, p);
}

async function noLocal() {
  const topic = `jsnl/${run}`;
  const a = await connect(`js5-nl-a-${run}`);
  await sub(a, topic, { qos: 1, nl: true });
  const b = await connect(`js5-nl-b-${run}`);
  await sub(b, topic, { qos: 1 });
  await pub(a, topic, 'from-a', { qos: 1 });
  await b.expect("A's message at B", 'from-a');
  await pub(b, topic, 'from-b', { qos: 1 });
  await a.expect("B's message at A (A's own must not come first)", 'from-b');
  await a.quiet(300, 'No Local subscriber must not get its own message');
  await end(a, b);
}

async function retainHandling() {
  const topic = `jsrh/${run}`;
  const p = await connect(`js5-rh-pub-${run}`);
  await pub(p, topic, 'kept', { qos: 1, retain: true });
  const s = await connect(`js5-rh-${run}`);
  await sub(s, topic, { qos: 1, rh: 2 });
  await pub(p, topic, 'live', { qos: 1 });
  await s.expect('live message after a Retain Handling 2 subscribe (no retained)', 'live');
  const s2 = await connect(`js5-rh2-${run}`);
  await sub(s2, topic, { qos: 1, rh: 1, rap: true });
  const m = await s2.expect('retained message, Retain Handling 1', 'kept');
  eq('retain flag of a retained message', m.retain, true);
  await pub(p, topic, 'live-retained', { qos: 1, retain: true });
  eq('retain flag with Retain As Published', (await s2.expect('live retained message', 'live-retained')).retain, true);
  eq('retain flag without Retain As Published', (await s.expect('live retained message', 'live-retained')).retain, false);
  await pub(p, topic, '', { qos: 1, retain: true });
  await end(p, s, s2);
}

async function persistentSession() {
  const cid = `js5-sess-${run}`;
  const topic = `jssess/${run}`;
  const opts = { clean: false, properties: { sessionExpiryInterval: 60 } };
  const first = await connect(cid, { ...opts, clean: true });
  eq('sessionPresent with Clean Start', first.connack.sessionPresent, false);
  await sub(first, topic);
  await end(first);
  await sleep(200);
  const p = await connect(`js5-sess-pub-${run}`);
  for (let i = 0; i < 3; i++) {
    await pub(p, topic, `queued-${i}`, { qos: 1, properties: { userProperties: { i: String(i) }, contentType: 'x/y' } });
  }
  const back = await connect(cid, opts);
  eq('sessionPresent after reconnect within Session Expiry', back.connack.sessionPresent, true);
  for (let i = 0; i < 3; i++) {
    const m = await back.expect(`queued message ${i}`, `queued-${i}`);
    eq(`queued message ${i} userProperties`, m.properties.userProperties, { i: String(i) });
    eq(`queued message ${i} contentType`, m.properties.contentType, 'x/y');
  }
  await withTimeout(back.endAsync(false, { properties: { sessionExpiryInterval: 0 } }), 'end');
  await sleep(200);
  const again = await connect(cid, { clean: false });
  eq('sessionPresent after DISCONNECT with Session Expiry 0', again.connack.sessionPresent, false);
  await end(again, p);
}

async function willDelay() {
  const watch = await connect(`js5-will-watch-${run}`);
  await sub(watch, `jswill/${run}/#`);
  const will = (name, willDelayInterval) => ({
    topic: `jswill/${run}/${name}`, payload: Buffer.from(`${name}-gone`), qos: 1, retain: false,
    properties: { willDelayInterval, contentType: 'text/x-will', userProperties: { who: name } },
  });
  // Reconnect in time: no will.
  const cid = `js5-will-a-${run}`;
  const a = await connect(cid, { properties: { sessionExpiryInterval: 60 }, will: will('a', 3) });
  a.stream.destroy();
  await sleep(200);
  const a2 = await connect(cid, { clean: false, properties: { sessionExpiryInterval: 60 } });
  await watch.quiet(3500, 'will sent although the client reconnected within the Will Delay Interval');
  await withTimeout(a2.endAsync(false, { properties: { sessionExpiryInterval: 0 } }), 'end');
  // No reconnect: the will after the delay, with its properties.
  const b = await connect(`js5-will-b-${run}`, { properties: { sessionExpiryInterval: 60 }, will: will('b', 1) });
  b.stream.destroy();
  const m = await watch.next('delayed will', TIMEOUT + 2000);
  eq('delayed will', [m.topic, m.payload], [`jswill/${run}/b`, 'b-gone']);
  eq('will contentType', m.properties.contentType, 'text/x-will');
  eq('will userProperties', m.properties.userProperties, { who: 'b' });
  await end(watch);
}

async function sessionTakeover() {
  const cid = `js5-takeover-${run}`;
  const first = await connect(cid);
  const second = await connect(cid);
  await withTimeout(new Promise((resolve) => {
    if (first.disconnects.length) resolve(); else first.once('disconnect', resolve);
  }), 'DISCONNECT to the first connection on session takeover');
  eq('DISCONNECT reason code on takeover', first.disconnects[0].reasonCode, 0x8e);
  first.end(true);
  await end(second);
}

async function mixedVersions() {
  const topic = `jsmix/${run}`;
  const v4 = await connect(`js5-mix-v4-${run}`, { protocolVersion: 4 });
  await sub(v4, topic);
  const v5 = await connect(`js5-mix-v5-${run}`);
  await sub(v5, topic);
  await pub(v5, topic, 'from-v5', { qos: 1, properties: { userProperties: { from: 'v5' }, contentType: 'text/plain' } });
  await v4.expect('v5 message at the v4 subscriber', 'from-v5');
  const m5 = await v5.expect('v5 message at the v5 subscriber', 'from-v5');
  eq('userProperties at the v5 subscriber', m5.properties.userProperties, { from: 'v5' });
  await pub(v4, topic, 'from-v4', { qos: 2 });
  await v4.expect('v4 message at the v4 subscriber', 'from-v4');
  const m = await v5.expect('v4 message at the v5 subscriber', 'from-v4');
  eq('properties of a v4 message at the v5 subscriber', m.properties, {});
  eq('QoS of a v4 message at the v5 subscriber', m.qos, 1);
  await end(v4, v5);
}

async function messageExpiryRemaining() {
  // A message delivered at once carries its Message Expiry Interval, never
  // more than was published (cores' clocks differ by up to a tick).
  const topic = `jsexpr/${run}`;
  const s = await connect(`js5-expr-${run}`);
  await sub(s, topic);
  const p = await connect(`js5-expr-pub-${run}`);
  for (const qos of [0, 1, 2]) {
    for (let i = 0; i < 3; i++) {
      await pub(p, topic, 'live', { qos, properties: { messageExpiryInterval: 60 } });
      const m = await s.expect(`live QoS ${qos} message with messageExpiryInterval 60`, 'live');
      const mei = m.properties.messageExpiryInterval;
      if (!(mei >= 59 && mei <= 60)) {
        fail(`live QoS ${qos} message (try ${i}): messageExpiryInterval ${mei}, expected 59..60 (published with 60)`);
      }
      await sleep(250);
    }
  }
  await end(s, p);
}

const CHECKS = {
  connackProperties, propertiesRoundTrip, topicAliasFromClient, topicAliasToClient, subscriptionIdentifiers,
  noLocal, retainHandling, persistentSession, willDelay, sessionTakeover, mixedVersions, messageExpiryRemaining,
};

async function main(checks, label) {
  if (process.argv[2] === '--names') {
    console.log(Object.keys(checks).join(' '));
    process.exit(0);
  }
  const args = process.argv.slice(3);
  const wanted = args.filter((a) => !a.startsWith('-'));
  const skipped = args.filter((a) => a.startsWith('-')).map((a) => a.slice(1));
  for (const w of [...wanted, ...skipped]) {
    if (!checks[w]) {
      console.error(`unknown check ${w}; checks: ${Object.keys(checks).join(' ')}`);
      process.exit(2);
    }
  }
  for (const [name, f] of Object.entries(checks)) {
    if ((wanted.length && !wanted.includes(name)) || skipped.includes(name)) continue;
    const t0 = Date.now();
    try {
      await f();
    } catch (e) {
      console.error(`FAIL (${label}) ${name}: ${e instanceof CheckFailed ? e.message : e.stack || e}`);
      process.exit(1);
    }
    console.log(`  ok ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  console.log(`ok: ${label}`);
  process.exit(0);
}

module.exports = { connect, sub, pub, end, eq, fail, sleep, withTimeout, main, run, CheckFailed };

if (require.main === module) main(CHECKS, 'MQTT.js MQTT 5');
