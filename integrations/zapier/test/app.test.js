'use strict';

// The app run by zapier-platform-core's own test harness (createAppTester) against a running
// connector in sandbox mode: CONNECTOR_URL and CONNECTOR_API_KEY say where and how.
// tests/faces/test_zapier.py starts the connector and this file in one network namespace.

const assert = require('node:assert/strict');
const http = require('node:http');
const { after, before, test } = require('node:test');

const zapier = require('zapier-platform-core');
const App = require('..');

const appTester = zapier.createAppTester(App);
const BASE = process.env.CONNECTOR_URL;
const API_KEY = process.env.CONNECTOR_API_KEY || '';
assert.ok(BASE, 'CONNECTOR_URL names the connector to test against');

const authData = {
  baseUrl: `${BASE}/`,
  apiKey: API_KEY,
  clientKey: 'demo-key',
  clientSecret: 'demo-secret',
};
const run = (kind, key, inputData, auth = authData) =>
  appTester(App[kind][key].operation.perform, { authData: auth, inputData });
// The REST-hook triggers, one per event the connector offers.
const HOOKS = Object.keys(App.triggers).filter((key) => App.triggers[key].operation.type === 'hook');

// The error a call failed with; fails the test when it succeeded.
const failure = async (promise) => {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('the call succeeded; an error was expected');
};
const appError = (error) => {
  assert.equal(error.name, 'AppError', error.message);
  return JSON.parse(error.message);
};

const sandboxFault = async (rule) => {
  const response = await fetch(`${BASE}/_sandbox/faults`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY },
    body: JSON.stringify(rule),
  });
  assert.ok(response.ok, await response.text());
};

// A file for uploadFile's file field, on loopback, as Zapier hands files over: a URL.
const FILE_BYTES = Buffer.from('firmware \u0000\u00ff bytes\n', 'latin1');
let files;
let filesUrl;
// A proxy in front of the connector that answers 503 while it restarts.
let proxy;
let proxyUrl;

const listen = (handler) =>
  new Promise((resolve) => {
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });

before(async () => {
  files = await listen((req, res) => {
    if (req.url === '/firmware.bin') {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      res.end(FILE_BYTES);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  filesUrl = `http://127.0.0.1:${files.address().port}`;
  proxy = await listen((req, res) => {
    res.writeHead(503, { 'Content-Type': 'text/html', 'Retry-After': '11' });
    res.end('<html><body>503 Service Temporarily Unavailable</body></html>');
  });
  proxyUrl = `http://127.0.0.1:${proxy.address().port}`;
});

after(() => {
  files.close();
  proxy.close();
});

test('the app is the one the manifest describes', () => {
  assert.equal(App.platformVersion, zapier.version);
  assert.equal(App.authentication.type, 'custom');
  assert.deepEqual(
    App.authentication.fields.map((f) => f.key),
    ['baseUrl', 'apiKey', 'clientKey', 'clientSecret'],
  );
  const total = ['triggers', 'searches', 'creates']
    .map((kind) => Object.keys(App[kind]).length)
    .reduce((a, b) => a + b);
  // Every block but the token ones (tokens are the connector's business), and the REST-hook
  // triggers, one per event, which are subscriptions rather than blocks.
  const manifest = require('../../../manifest.json');
  assert.deepEqual(HOOKS, ['messageReceived', 'clientCreated', 'fileCreated']);
  assert.equal(total - HOOKS.length, manifest.blocks.filter((b) => b.tag !== 'token').length);
  // Sign-in lives in the connection only: no step has a token, key or secret field.
  for (const kind of ['triggers', 'searches', 'creates']) {
    for (const [key, operation] of Object.entries(App[kind])) {
      const fields = operation.operation.inputFields.map((f) => f.key);
      for (const signIn of ['accessToken', 'clientKey', 'clientSecret', 'token']) {
        assert.ok(!fields.includes(signIn), `${kind}.${key} has no ${signIn} field`);
      }
    }
  }
});

// A dynamic dropdown ("getTenants.id.name") as Zapier fills it: the trigger run with the
// form's values so far, each item's value and label.
const dropdown = async (field, inputData = {}) => {
  const [trigger, value, label] = field.dynamic.split('.');
  const items = await run('triggers', trigger, inputData);
  return items.map((item) => ({ value: item[value], label: item[label] }));
};

test('the dropdowns list the tenants, then the chosen tenant\'s clients', async () => {
  const tenant = await run('creates', 'createTenant', {
    name: 'Dropdown farm',
    maxClients: 2,
    maxMessages: 10,
  });
  const device = await run('creates', 'createClient', {
    tenantId: tenant.id,
    type: 'device',
    name: 'dropdown pump',
    provisioningId: `zap-dropdown-${Date.now()}`,
  });
  const fields = Object.fromEntries(
    App.creates.publishMessage.operation.inputFields.map((f) => [f.key, f]),
  );
  assert.deepEqual(fields.clientId.dependsOn, ['tenantId']);
  const tenants = await dropdown(fields.tenantId);
  assert.ok(tenants.some((t) => t.value === tenant.id && t.label === 'Dropdown farm'));
  const clients = await dropdown(fields.clientId, { tenantId: tenant.id });
  assert.deepEqual(clients, [{ value: device.id, label: 'dropdown pump' }]);
  // The tenant blocks' own id is picked from the same list.
  const single = App.searches.getSingleTenant.operation.inputFields.find((f) => f.key === 'id');
  assert.equal(single.dynamic, fields.tenantId.dynamic);
  // Options in words, their values sent.
  assert.deepEqual(
    fields.qos.choices.map((c) => [c.value, c.label]),
    [['1', 'At most once (1)'], ['2', 'At least once (2)'], ['3', 'Exactly once (3)']],
  );
});

test("the README's Zap, run twice: each new message forwarded, nobody invents an ID", async () => {
  const tenant = await run('creates', 'createTenant', {
    name: 'Zap farm',
    maxClients: 2,
    maxMessages: 100,
  });
  const made = async (name, topics) =>
    run('creates', 'createClient', {
      tenantId: tenant.id,
      type: 'device',
      name,
      provisioningId: `zap-readme-${name}-${Date.now()}`,
      pubTopics: topics,
    });
  const source = await made('source', ['telemetry']);
  const sink = await made('sink', ['forwarded']);
  const from = { tenantId: tenant.id, clientId: source.id };
  for (const payload of ['{"temperature": 21.5}', '{"temperature": 22}']) {
    await run('creates', 'publishMessage', {
      ...from,
      type: 'pub',
      topic: 'telemetry',
      payload,
      qos: '1',
    });
    // Trigger: New Message on the source; its newest item is the one just sent.
    const [newest] = await run('triggers', 'getMessages', from);
    assert.equal(newest.payload, payload);
    assert.deepEqual(newest.payload_json, JSON.parse(payload));
    // Action: Publish Message to the sink, Payload mapped, no ID given (step 4 of the README).
    const forwarded = await run('creates', 'publishMessage', {
      tenantId: tenant.id,
      clientId: sink.id,
      type: 'pub',
      topic: 'forwarded',
      payload: newest.payload,
      qos: '1',
    });
    assert.ok(forwarded.messageId);
  }
  const seen = await run('triggers', 'getMessages', { tenantId: tenant.id, clientId: sink.id });
  assert.deepEqual(
    seen.map((m) => m.payload).sort(),
    ['{"temperature": 21.5}', '{"temperature": 22}'],
  );
  for (const message of seen) assert.ok(message.message_id >= 1 && message.message_id <= 65535);
});

test('the connection test gets a token with the right secret, and keeps it out of the result', async () => {
  const result = await appTester(App.authentication.test, { authData });
  assert.equal(result.clientKey, 'demo-key');
  assert.equal(result.token_type, 'bearer');
  assert.ok(result.expires_in > 0);
  assert.equal(result.access_token, undefined);
  const label = await appTester(App.authentication.connectionLabel, {
    authData,
    inputData: result,
  });
  assert.equal(label, `demo-key at ${new URL(BASE).host}`);
});

test('the connection test fails with a wrong secret, with the connector\'s message', async () => {
  const error = await failure(
    appTester(App.authentication.test, {
      authData: { ...authData, clientSecret: 'not-the-secret' },
    }),
  );
  assert.equal(error.name, 'ExpiredAuthError', error.message);
  assert.match(error.message, /API_ERROR/);
  assert.doesNotMatch(error.message, /not-the-secret/);
  // The same for any step that runs on the connection's key and secret (managed tokens).
  const step = await failure(
    run('triggers', 'getTenants', {}, { ...authData, clientSecret: 'not-the-secret' }),
  );
  assert.equal(step.name, 'ExpiredAuthError', step.message);
});

test('a wrong connector API key is an expired connection', async () => {
  const error = await failure(
    appTester(App.authentication.test, { authData: { ...authData, apiKey: 'wrong-key' } }),
  );
  assert.equal(error.name, 'ExpiredAuthError', error.message);
  assert.match(error.message, /UNAUTHORIZED/);
});

test('an address that is not the connector says so', async () => {
  const error = await failure(
    appTester(App.authentication.test, { authData: { ...authData, baseUrl: filesUrl } }),
  );
  const { code, status } = appError(error);
  assert.equal(code, 'NOT_A_CONNECTOR');
  assert.equal(status, 404);
});

test('a connector that does not answer says where it was looked for', async () => {
  const closed = await listen(() => {});
  const { port } = closed.address();
  await new Promise((resolve) => closed.close(resolve));
  const error = await failure(
    appTester(App.authentication.test, {
      authData: { ...authData, baseUrl: `http://127.0.0.1:${port}` },
    }),
  );
  const { message, code } = appError(error);
  assert.equal(code, 'CONNECTOR_UNREACHABLE');
  assert.match(message, new RegExp(`127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
  assert.doesNotMatch(message, /demo-secret|demo-key/);
});

test('every trigger, search and create against the sandbox', async () => {
  const called = new Set();
  const call = async (kind, key, inputData, auth) => {
    called.add(`${kind}.${key}`);
    return run(kind, key, inputData, auth);
  };

  // Managed tokens: the connection's key and secret go with every step.
  const tenant = await call('creates', 'createTenant', {
    name: 'Zapier farm',
    description: 'made by the Zapier app test',
    maxClients: '10',
    maxMessages: 1000,
  });
  assert.match(tenant.id, /\w/);
  assert.equal(tenant.max_clients, 10);

  const [found] = await call('searches', 'getSingleTenant', { id: tenant.id });
  assert.equal(found.name, 'Zapier farm');
  assert.deepEqual(await call('searches', 'getSingleTenant', { id: 'no-such-tenant' }), []);

  const updated = await call('creates', 'updateTenant', { id: tenant.id, maxMessages: 2000 });
  assert.equal(updated.max_messages, 2000);

  const tenants = await call('triggers', 'getTenants', { active: true });
  assert.ok(tenants.some((t) => t.id === tenant.id));
  const createdAt = tenants.map((t) => t.created_at);
  assert.deepEqual(createdAt, [...createdAt].sort((a, b) => b - a), 'newest first');

  const provisioningId = `zap-${Date.now()}`;
  const device = await call('creates', 'createClient', {
    tenantId: tenant.id,
    type: 'device',
    name: 'pump',
    pubTopics: ['telemetry', 'alerts'],
    subTopics: ['commands'],
    secureCertEnabled: false,
    provisioningId,
    gsmMsisdn: '9876543210',
    gsmSendSms: 'false',
  });
  assert.deepEqual(device.pub_topics, ['telemetry', 'alerts']);
  const user = await call('creates', 'createClient', {
    tenantId: tenant.id,
    type: 'user',
    name: 'operator',
    provisioningId: `${provisioningId}-user`,
  });

  const clients = await call('triggers', 'getClients', { tenantId: tenant.id, type: 'device' });
  assert.deepEqual(
    clients.map((c) => c.id),
    [device.id],
  );
  const [client] = await call('searches', 'getSingleClient', {
    tenantId: tenant.id,
    clientId: device.id,
  });
  assert.equal(client.name, 'pump');
  const renamed = await call('creates', 'updateClient', {
    tenantId: tenant.id,
    clientId: device.id,
    description: 'Water pump',
  });
  assert.equal(renamed.description, 'Water pump');

  // Mapped data is sent as it is: Zapier's {{curlies}} in a payload are not expanded.
  const payload = 'temperature 21.5 {{bundle.authData.clientSecret}}';
  const ids = { tenantId: tenant.id, clientId: device.id };
  const published = await call('creates', 'publishMessage', {
    ...ids,
    id: 1,
    type: 'pub',
    topic: 'telemetry',
    payload,
    qos: '1',
  });
  assert.ok(published.messageId);
  const held = await run('creates', 'publishMessage', {
    ...ids,
    id: '2',
    type: 'pub',
    topic: 'alerts',
    payload: 'held',
    qos: '2',
    save: true,
  });
  const released = await call('creates', 'releaseMessage', {
    ...ids,
    messageId: held.messageId,
  });
  assert.equal(released.status, 'released');

  const messages = await call('triggers', 'getMessages', {
    ...ids,
    start: '2020-01-01T00:00:00Z',
    type: 'pub',
  });
  assert.equal(messages.length, 2);
  assert.equal(messages.find((m) => m.id === published.messageId).payload, payload);
  assert.equal(new Set(messages.map((m) => m.id)).size, 2);

  for (const key of ['getClientSessions', 'getClientLogs', 'getClientNetworkLogs']) {
    const items = await call('triggers', key, { ...ids, start: '2020-01-01' });
    assert.ok(items.length > 0, `${key} lists something after a publish`);
    assert.equal(new Set(items.map((i) => i.id)).size, items.length, `${key}: unique ids`);
    // The same items polled again keep their ids (Zapier de-duplicates by them).
    const again = await run('triggers', key, { ...ids, start: '2020-01-01' });
    assert.deepEqual(
      again.map((i) => i.id).slice(-items.length),
      items.map((i) => i.id).slice(-again.length),
    );
  }

  const [info] = await call('searches', 'getClientInfo', ids);
  assert.equal(info.messages_published, 2);
  const [metrics] = await call('searches', 'getClientMetrics', { ...ids, interval: 'month' });
  assert.equal(metrics.interval, 'month');

  const userIds = { tenantId: tenant.id, clientId: user.id };
  const [authToken] = await call('searches', 'getClientAuthToken', userIds);
  const reset = await call('creates', 'updateClientAuthToken', userIds);
  assert.notEqual(reset.auth_token, authToken.auth_token);
  const certificate = await call('creates', 'updateClientCertificate', ids);
  assert.match(certificate.certificate, /BEGIN CERTIFICATE/);

  // JSON as text, the way a Zapier text field holds it.
  const config = await call('creates', 'updateClientConfig', {
    ...ids,
    config: '{"PING_REQ_INTERVAL": 180, "mode": "eco"}',
  });
  assert.deepEqual(config.config, { PING_REQ_INTERVAL: 180, mode: 'eco' });
  const [readBack] = await call('searches', 'getClientConfig', ids);
  assert.deepEqual(readBack.config, config.config);
  await call('creates', 'deleteClientConfig', ids);

  // A file field: the app downloads the URL and sends the bytes.
  const uploaded = await call('creates', 'uploadFile', {
    ...ids,
    filename: 'firmware.bin',
    file: `${filesUrl}/firmware.bin`,
  });
  assert.equal(uploaded.size, FILE_BYTES.length);
  await run('creates', 'uploadFile', {
    ...ids,
    filename: 'notes.txt',
    fileContent: Buffer.from('hello').toString('base64'),
  });
  const [download] = await call('searches', 'downloadFile', { ...ids, filename: 'firmware.bin' });
  assert.deepEqual(Buffer.from(download.content, 'base64'), FILE_BYTES);
  const listed = await call('triggers', 'getFiles', ids);
  assert.deepEqual(listed.map((f) => f.filename).sort(), ['firmware.bin', 'notes.txt']);
  assert.equal(new Set(listed.map((f) => f.id)).size, 2);
  const missing = await failure(
    run('creates', 'uploadFile', { ...ids, filename: 'x.bin', file: `${filesUrl}/nothing` }),
  );
  assert.equal(appError(missing).code, 'FILE_DOWNLOAD_FAILED');
  await call('creates', 'deleteFile', { ...ids, filename: 'notes.txt' });

  await call('creates', 'deleteClient', userIds);
  await call('creates', 'deleteClient', ids);

  const gone = await call('creates', 'deleteTenant', { id: tenant.id });
  assert.equal(gone.id, tenant.id);

  // The REST-hook triggers have their own tests (below): they need the connector's watcher.
  const every = ['triggers', 'searches', 'creates']
    .flatMap((kind) => Object.keys(App[kind]).map((key) => `${kind}.${key}`))
    .filter((name) => !HOOKS.includes(name.replace('triggers.', '')));
  assert.deepEqual(
    every.filter((name) => !called.has(name)),
    [],
    'every operation was called',
  );
});

test('an error envelope is a Zapier error with the code and message', async () => {
  const error = await failure(run('creates', 'createTenant', { description: 'no name' }));
  const { message, code, status } = appError(error);
  assert.equal(code, 'REQUIRED_FIELDS');
  assert.equal(status, 422);
  assert.match(message, /Missing required arguments: name, maxClients, maxMessages\./);

  const bad = appError(
    await failure(run('creates', 'createTenant', { name: 'x', maxClients: -1, maxMessages: 1 })),
  );
  assert.equal(bad.code, 'INVALID_FIELDS');
  assert.match(bad.message, /maxClients/);
});

test('a 429 is a throttled error with the Retry-After', async () => {
  await sandboxFault({
    method: 'POST',
    path: '/api/v1/tenants',
    fault: '429',
    times: 1,
    retry_after: 7,
  });
  const error = await failure(
    run('creates', 'createTenant', { name: 'throttled', maxClients: 1, maxMessages: 1 }),
  );
  assert.equal(error.name, 'ThrottledError', error.message);
  const { message, delay } = JSON.parse(error.message);
  assert.equal(delay, 7);
  assert.match(message, /\(API_ERROR\)$/);
});

test('a 503 is a throttled error with the Retry-After, envelope or not', async () => {
  const error = await failure(
    run('triggers', 'getTenants', {}, { ...authData, baseUrl: proxyUrl }),
  );
  assert.equal(error.name, 'ThrottledError', error.message);
  assert.equal(JSON.parse(error.message).delay, 11);
});

test('a create run twice with the same Idempotency Key publishes one message', async () => {
  const tenant = await run('creates', 'createTenant', {
    name: 'Keyed farm',
    maxClients: 2,
    maxMessages: 10,
  });
  const device = await run('creates', 'createClient', {
    tenantId: tenant.id,
    type: 'device',
    name: 'keyed pump',
    provisioningId: `zap-keyed-${Date.now()}`,
    pubTopics: ['telemetry'],
  });
  const ids = { tenantId: tenant.id, clientId: device.id };
  const message = { ...ids, id: 1, type: 'pub', topic: 'telemetry', payload: 'once', qos: 1 };
  // What Zapier does when it retries or replays the step: the same input, the same key.
  const idempotencyKey = `zap-publish-${tenant.id}`;
  const first = await run('creates', 'publishMessage', { ...message, idempotencyKey });
  const again = await run('creates', 'publishMessage', { ...message, idempotencyKey });
  assert.equal(first.idempotentReplayed, undefined);
  assert.deepEqual(again, { ...first, idempotentReplayed: true });
  const messages = await run('triggers', 'getMessages', { ...ids, start: '2020-01-01T00:00:00' });
  assert.deepEqual(
    messages.map((m) => m.payload),
    ['once'],
  );
  // The same key with another payload is refused, not sent.
  const reused = appError(
    await failure(run('creates', 'publishMessage', { ...message, payload: 'x', idempotencyKey })),
  );
  assert.equal(reused.code, 'IDEMPOTENCY_KEY_REUSED');
  assert.equal(reused.status, 422);
});

// -- the REST-hook trigger: the connector's watcher runs beside it (tests/support/zapier_run.py)

const hook = (method, bundle, key = 'messageReceived') =>
  appTester(App.triggers[key].operation[method], { authData, ...bundle });

const subscription = async (id) =>
  fetch(`${BASE}/subscriptions/${id}`, { headers: { 'X-API-Key': API_KEY } });

test('the instant trigger subscribes, gets signed deliveries, shapes them and unsubscribes', async () => {
  const deliveries = [];
  const catcher = await listen((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      deliveries.push({ headers: req.headers, content: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200);
      res.end();
    });
  });
  try {
    const tenant = await run('creates', 'createTenant', {
      name: 'Instant farm',
      maxClients: 2,
      maxMessages: 100,
    });
    const device = await run('creates', 'createClient', {
      tenantId: tenant.id,
      type: 'device',
      name: 'instant pump',
      provisioningId: `zap-instant-${Date.now()}`,
      pubTopics: ['telemetry', 'other'],
    });
    const ids = { tenantId: tenant.id, clientId: device.id };
    const inputData = { ...ids, topic: 'telemetry' };
    const targetUrl = `http://127.0.0.1:${catcher.address().port}/zap`;
    const subscribeData = await hook('performSubscribe', { inputData, targetUrl });
    assert.match(subscribeData.id, /\w/);
    assert.match(subscribeData.secret, /^whsec_/);
    assert.equal((await subscription(subscribeData.id)).status, 200);

    const say = (id, topic, payload) =>
      run('creates', 'publishMessage', { ...ids, id, type: 'pub', topic, payload, qos: 1 });
    await say(1, 'other', 'not this topic');
    await say(2, 'telemetry', '22.5');
    const deadline = Date.now() + 60000;
    while (deliveries.length < 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(deliveries.length, 1, 'one delivery, for the message on the topic');
    const [delivery] = deliveries;
    // Handed to the Python side, which checks it with the standardwebhooks library.
    if (process.env.DELIVERY_FILE) {
      require('node:fs').writeFileSync(
        process.env.DELIVERY_FILE,
        JSON.stringify({ ...delivery, secret: subscribeData.secret }),
      );
    }

    // perform: the message, as getMessages lists it, once its signature checks out; Zapier
    // names the raw request's headers Http-<Name>.
    const rawHeaders = Object.fromEntries(
      Object.entries(delivery.headers).map(([name, value]) => [`Http-${name}`, value]),
    );
    const bundle = {
      cleanedRequest: JSON.parse(delivery.content),
      rawRequest: { headers: rawHeaders, content: delivery.content },
      subscribeData,
    };
    const [item] = await hook('perform', bundle);
    assert.equal(item.payload, '22.5');
    assert.equal(item.topic, 'telemetry');
    // The same item the polling trigger gives for that message.
    const listed = await run('triggers', 'getMessages', ids);
    assert.deepEqual(item, listed.find((m) => m.payload === '22.5'));
    // Tampered with, or signed with another secret: dropped.
    const tampered = { ...bundle.rawRequest, content: delivery.content.replace('22.5', '99.9') };
    assert.deepEqual(await hook('perform', { ...bundle, rawRequest: tampered }), []);
    const other = { ...subscribeData, secret: `whsec_${Buffer.alloc(32, 7).toString('base64')}` };
    assert.deepEqual(await hook('perform', { ...bundle, subscribeData: other }), []);

    // performList: samples from getMessages, on the topic only, newest first.
    const samples = await hook('performList', { inputData });
    assert.deepEqual(samples.map((m) => m.payload), ['22.5']);

    await hook('performUnsubscribe', { inputData, subscribeData });
    assert.equal((await subscription(subscribeData.id)).status, 404);
    // Removed twice is no error (Zapier may retry it).
    await hook('performUnsubscribe', { inputData, subscribeData });
  } finally {
    catcher.close();
  }
});

test('the new client and new file triggers get each new one once, shaped as their list gives it', async () => {
  const deliveries = [];
  const catcher = await listen((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      deliveries.push({ headers: req.headers, content: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200);
      res.end();
    });
  });
  const wait = async (count) => {
    const deadline = Date.now() + 60000;
    while (deliveries.length < count && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(deliveries.length, count);
  };
  const perform = (key, delivery, subscribeData) => {
    const rawHeaders = Object.fromEntries(
      Object.entries(delivery.headers).map(([name, value]) => [`Http-${name}`, value]),
    );
    const bundle = {
      cleanedRequest: JSON.parse(delivery.content),
      rawRequest: { headers: rawHeaders, content: delivery.content },
      subscribeData,
    };
    return hook('perform', bundle, key);
  };
  try {
    const tenant = await run('creates', 'createTenant', { name: 'Hooked farm', maxClients: 3, maxMessages: 10 });
    const make = (name) =>
      run('creates', 'createClient', {
        tenantId: tenant.id,
        type: 'device',
        name,
        provisioningId: `zap-${name}-${Date.now()}`,
      });
    const first = await make('first');
    const targetUrl = `http://127.0.0.1:${catcher.address().port}/zap`;

    // New client: the one made before the subscription is not sent, the one after is, once
    // (its created_at is after the subscription, whenever the watcher's first read comes).
    const clients = await hook('performSubscribe', { inputData: { tenantId: tenant.id }, targetUrl }, 'clientCreated');
    assert.equal((await subscription(clients.id)).status, 200);
    const second = await make('second');
    await wait(1);
    const [client] = await perform('clientCreated', deliveries[0], clients);
    assert.equal(client.id, second.id);
    assert.deepEqual(client, (await run('triggers', 'getClients', { tenantId: tenant.id })).find((c) => c.id === second.id));
    const clientSamples = await hook('performList', { inputData: { tenantId: tenant.id } }, 'clientCreated');
    assert.deepEqual(clientSamples.map((c) => c.id).sort(), [first.id, second.id].sort());
    await hook('performUnsubscribe', { subscribeData: clients }, 'clientCreated');
    assert.equal((await subscription(clients.id)).status, 404);

    // New file: uploaded after the subscription, and uploaded again under the same name.
    const ids = { tenantId: tenant.id, clientId: first.id };
    const files = await hook('performSubscribe', { inputData: ids, targetUrl }, 'fileCreated');
    const upload = (text) =>
      run('creates', 'uploadFile', { ...ids, filename: 'log.txt', fileContent: Buffer.from(text).toString('base64') });
    await upload('one');
    await wait(2);
    await upload('two');
    await wait(3);
    const shaped = [];
    for (const delivery of deliveries.slice(1)) shaped.push(...(await perform('fileCreated', delivery, files)));
    assert.deepEqual(shaped.map((f) => [f.filename, f.size]), [['log.txt', 3], ['log.txt', 3]]);
    assert.notEqual(shaped[0].created_at, shaped[1].created_at);
    assert.notEqual(deliveries[1].headers['webhook-id'], deliveries[2].headers['webhook-id']);
    await hook('performUnsubscribe', { subscribeData: files }, 'fileCreated');
    assert.equal((await subscription(files.id)).status, 404);
  } finally {
    catcher.close();
  }
});
