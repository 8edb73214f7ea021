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
  const manifest = require('../../../manifest.json');
  assert.equal(total, manifest.blocks.length);
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

  // A token of our own, for the calls that take one explicitly.
  const token = await call('creates', 'getAccessToken', {});
  assert.equal(token.token_type, 'bearer');
  const accessToken = token.access_token;
  assert.ok(accessToken);

  // Managed tokens: no accessToken, the connection's key and secret are sent instead.
  const tenant = await call('creates', 'createTenant', {
    name: 'Zapier farm',
    description: 'made by the Zapier app test',
    maxClients: '10',
    maxMessages: 1000,
  });
  assert.match(tenant.id, /\w/);
  assert.equal(tenant.max_clients, 10);

  const [found] = await call('searches', 'getSingleTenant', { accessToken, id: tenant.id });
  assert.equal(found.name, 'Zapier farm');
  assert.deepEqual(await call('searches', 'getSingleTenant', { id: 'no-such-tenant' }), []);

  const updated = await call('creates', 'updateTenant', { id: tenant.id, maxMessages: 2000 });
  assert.equal(updated.max_messages, 2000);

  const tenants = await call('triggers', 'getTenants', { active: true, accessToken: '' });
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

  // A revoked token given explicitly is the step's error, not the connection's.
  await call('creates', 'invalidateAccessToken', { token: accessToken });
  const revoked = await failure(run('searches', 'getSingleTenant', { accessToken, id: tenant.id }));
  const refused = appError(revoked);
  assert.equal(refused.code, 'API_ERROR');
  assert.equal(refused.status, 401);

  const gone = await call('creates', 'deleteTenant', { id: tenant.id });
  assert.equal(gone.id, tenant.id);

  const every = ['triggers', 'searches', 'creates'].flatMap((kind) =>
    Object.keys(App[kind]).map((key) => `${kind}.${key}`),
  );
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
