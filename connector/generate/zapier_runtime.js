'use strict';

// What every operation of the app shares: one call to the connector (POST /blocks/<name>), the
// envelope turned into a result or a Zapier error, and the perform functions of triggers,
// searches and creates. The operations themselves are data, generated from the manifest.

const crypto = require('crypto');

const given = (value) =>
  !(
    value === undefined ||
    value === null ||
    value === '' ||
    (Array.isArray(value) && value.length === 0)
  );

const baseUrl = (bundle) =>
  String(bundle.authData.baseUrl || '')
    .trim()
    .replace(/\/+$/, '');

const isUrl = (value) => typeof value === 'string' && /^https?:\/\//i.test(value.trim());

// A file field holds a URL (Zapier hands over files that way); the app downloads it and sends
// the bytes base64 in the block's text alternative (fileContent), so the connector never has to
// reach Zapier's file storage. Text that is not a URL is taken as the file's content.
const fileBytes = async (z, value) => {
  if (!isUrl(value)) {
    return Buffer.from(String(value), 'utf8');
  }
  const response = await z.request({
    url: value.trim(),
    method: 'GET',
    raw: true,
    merge: false,
    skipThrowForStatus: true,
  });
  if (response.status >= 400) {
    throw new z.errors.Error(
      `Could not download the file: its URL answered HTTP ${response.status}.`,
      'FILE_DOWNLOAD_FAILED',
      response.status,
    );
  }
  return response.buffer();
};

// A number from 1 to 65535 (publishMessage's id) drawn from the step's Idempotency Key, the same
// on every retry or replay of the step; at random when there is no key.
const numberFrom = (key) => {
  const seed = given(key) ? String(key) : crypto.randomUUID();
  const digest = crypto.createHash('sha256').update(seed).digest();
  return (digest.readUInt32BE(0) % 65535) + 1;
};

// The arguments of one call: the fields the user filled in, what the app fills itself when
// left empty (publishMessage's id), and the connection's client key and secret wherever the
// block takes them: no step has a sign-in field (the connector's managed tokens).
const argumentsFor = async (z, bundle, meta) => {
  const input = bundle.inputData || {};
  const args = {};
  for (const name of meta.args) {
    if (given(input[name])) {
      args[name] = input[name];
    }
  }
  for (const [name, alternative] of Object.entries(meta.files || {})) {
    if (given(args[name]) && !given(args[alternative])) {
      const bytes = await fileBytes(z, args[name]);
      args[alternative] = bytes.toString('base64');
      delete args[name];
    }
  }
  for (const name of meta.chosen || []) {
    if (!given(args[name])) args[name] = numberFrom(input.idempotencyKey);
  }
  if (meta.credentials === 'always' || meta.credentials === 'managed') {
    args.clientKey = bundle.authData.clientKey;
    args.clientSecret = bundle.authData.clientSecret;
  }
  return args;
};

const hostOf = (bundle) => {
  try {
    return new URL(baseUrl(bundle)).host;
  } catch (error) {
    return baseUrl(bundle);
  }
};

// Runs one block; answers {status, envelope, retryAfter, managed}.
const send = async (z, bundle, meta) => {
  const args = await argumentsFor(z, bundle, meta);
  const headers = {
    'Content-Type': 'application/json',
    Accept: 'application/json',
  };
  if (given(bundle.authData.apiKey)) {
    headers['X-API-Key'] = bundle.authData.apiKey;
  }
  // A create's Idempotency Key, when the user gave one: Zapier's retries and replays of the
  // step reuse its input, so the connector sends the call to InstaMsg at most once.
  const key = (bundle.inputData || {}).idempotencyKey;
  if (meta.keyed && given(key)) {
    headers['Idempotency-Key'] = String(key);
  }
  const url = `${baseUrl(bundle)}/blocks/${meta.block}`;
  const response = await z
    .request({
      url,
      method: 'POST',
      headers,
      // Sent as text, and merge off: Zapier would otherwise drop or refuse {{...}} in the
      // user's data (a payload is the user's, curly braces included).
      body: JSON.stringify(args),
      merge: false,
      // Every status is read here, 429 included, so the connector's own message reaches the user.
      skipThrowForStatus: true,
      throwForThrottlingEarly: false,
    })
    .catch((error) => {
      throw new z.errors.Error(
        `Could not reach the connector at ${hostOf(bundle)} (${error.code || error.name}): ` +
          "check the connection's Connector URL.",
        'CONNECTOR_UNREACHABLE',
        null,
      );
    });
  let envelope = null;
  try {
    envelope = JSON.parse(response.content);
  } catch (error) {
    envelope = null;
  }
  if (!envelope || typeof envelope !== 'object' || !envelope.callback) {
    envelope = null;
  }
  const header = response.headers.get('retry-after');
  return {
    status: response.status,
    envelope,
    retryAfter: header === null || header === undefined ? null : header,
    managed: 'clientSecret' in args,
    replayed: response.headers.get('idempotent-replayed') === 'true',
  };
};

const THROTTLED = [429, 503];

const delayOf = (answer, error) => {
  const seconds = parseInt(answer.retryAfter, 10);
  if (!Number.isNaN(seconds)) {
    return seconds;
  }
  if (error && typeof error.retry_after_s === 'number') {
    return Math.ceil(error.retry_after_s);
  }
  return null;
};

// The block's result, or the Zapier error that says what went wrong.
const unwrap = (z, answer) => {
  const { status, envelope } = answer;
  if (!envelope) {
    if (THROTTLED.includes(status)) {
      throw new z.errors.ThrottledError(
        `The connector answered HTTP ${status}; try again later.`,
        delayOf(answer, null),
      );
    }
    throw new z.errors.Error(
      `The connector answered HTTP ${status} without an envelope: is the connection's ` +
        'Connector URL the connector\'s address?',
      'NOT_A_CONNECTOR',
      status,
    );
  }
  const written = envelope.contextWrites || {};
  if (envelope.callback === 'success') {
    for (const warning of envelope.warnings || []) {
      z.console.log(`connector warning: ${warning}`);
    }
    return written.to;
  }
  const error = written.to || {};
  const code = error.status_code || 'ERROR';
  const message = error.status_msg || `The connector answered HTTP ${status}.`;
  if (THROTTLED.includes(status)) {
    throw new z.errors.ThrottledError(`${message} (${code})`, delayOf(answer, error));
  }
  // The connection's own credentials no longer work: Zapier marks the connection expired.
  if (code === 'UNAUTHORIZED' || (status === 401 && answer.managed)) {
    throw new z.errors.ExpiredAuthError(`${message} (${code})`);
  }
  throw new z.errors.Error(message, code, status);
};

const asObject = (result) =>
  result !== null && typeof result === 'object' && !Array.isArray(result)
    ? result
    : { result };

const digestOf = (value) =>
  crypto.createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);

// Items without an id of their own (log lines, files) get one from what they hold: the time
// field, then a digest of every field, so the same item polled twice has the same id.
const withId = (item, meta) => {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    return { id: digestOf(item), value: item };
  }
  if (given(item.id)) {
    return item;
  }
  const digest = digestOf(meta.fields.map((name) => (name in item ? item[name] : null)));
  const when = meta.time && given(item[meta.time]) ? `${item[meta.time]}-` : '';
  return { id: `${when}${digest}`, ...item };
};

// Two identical items (two equal log lines in the same millisecond) stay two items: the
// second gets -2 after its id, in the order the connector listed them.
const distinct = (items) => {
  const seen = new Map();
  return items.map((item) => {
    const key = String(item.id);
    const count = (seen.get(key) || 0) + 1;
    seen.set(key, count);
    return count === 1 ? item : { ...item, id: `${key}-${count}` };
  });
};

// Newest first, as Zapier expects of a polling trigger.
const newestFirst = (items, meta) => {
  if (!meta.time) {
    return items;
  }
  const at = (item) => Number(item[meta.time]) || 0;
  return items
    .map((item, index) => ({ item, index }))
    .sort((a, b) => at(b.item) - at(a.item) || b.index - a.index)
    .map(({ item }) => item);
};

const trigger = (definition, meta) => {
  definition.operation.perform = async (z, bundle) => {
    const result = unwrap(z, await send(z, bundle, meta));
    const items = Array.isArray(result) ? result : given(result) ? [result] : [];
    return newestFirst(distinct(items.map((item) => withId(item, meta))), meta);
  };
  definition.operation.sample = withId(definition.operation.sample, meta);
  return definition;
};

const search = (definition, meta) => {
  definition.operation.perform = async (z, bundle) => {
    const answer = await send(z, bundle, meta);
    // Nothing of that ID is an empty search result, not a failed step.
    const error = answer.envelope && answer.envelope.contextWrites;
    if (
      answer.status === 404 &&
      error &&
      error.to &&
      error.to.status_code === 'API_ERROR'
    ) {
      return [];
    }
    return [asObject(unwrap(z, answer))];
  };
  return definition;
};

// A create answered from its Idempotency Key (not sent again) says so in idempotentReplayed.
const create = (definition, meta) => {
  definition.operation.perform = async (z, bundle) => {
    const answer = await send(z, bundle, meta);
    const result = asObject(unwrap(z, answer));
    return answer.replayed ? { ...result, idempotentReplayed: true } : result;
  };
  return definition;
};


// -- the REST-hook trigger (README, "Instant triggers") --------------------------------------

// A delivery older or newer than this (seconds) is refused (Standard Webhooks' advice).
const TOLERANCE_SECONDS = 5 * 60;

// One call to the connector's /subscriptions routes; answers {status, data}.
const subscriptionCall = async (z, bundle, method, path, body) => {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (given(bundle.authData.apiKey)) {
    headers['X-API-Key'] = bundle.authData.apiKey;
  }
  const response = await z.request({
    url: `${baseUrl(bundle)}${path}`,
    method,
    headers,
    ...(body ? { body: JSON.stringify(body) } : {}),
    merge: false,
    skipThrowForStatus: true,
  });
  let data = null;
  try {
    data = response.content ? JSON.parse(response.content) : null;
  } catch (error) {
    data = null;
  }
  return { status: response.status, data };
};

const refusal = (z, answer, what) => {
  const to = (answer.data && answer.data.contextWrites && answer.data.contextWrites.to) || {};
  return new z.errors.Error(
    `The connector refused to ${what} (HTTP ${answer.status}): ` +
      (to.status_msg || "check the connection's Connector URL and API Key."),
    to.status_code || 'SUBSCRIPTION_REFUSED',
    answer.status,
  );
};

// A header of Zapier's raw request: Zapier names them "Http-Webhook-Id"; a test, "webhook-id".
const rawHeader = (headers, name) => {
  for (const [key, value] of Object.entries(headers || {})) {
    const lower = key.toLowerCase();
    if (lower === name || lower === `http-${name}`) return String(value);
  }
  return null;
};

// Standard Webhooks: HMAC-SHA256 of "id.timestamp.body" keyed with the whsec_ secret's base64
// part, compared in constant time; the header holds "v1,<base64>" entries separated by spaces.
const signedBy = (secret, headers, body, now = Date.now() / 1000) => {
  const id = rawHeader(headers, 'webhook-id');
  const timestamp = rawHeader(headers, 'webhook-timestamp');
  const signatures = rawHeader(headers, 'webhook-signature');
  if (!secret || !id || !timestamp || !signatures || typeof body !== 'string') return false;
  const at = Number(timestamp);
  if (!Number.isFinite(at) || Math.abs(now - at) > TOLERANCE_SECONDS) return false;
  const key = Buffer.from(String(secret).replace(/^whsec_/, ''), 'base64');
  const expected = crypto.createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  return signatures.split(' ').some((entry) => {
    const [version, signature] = entry.split(',');
    if (version !== 'v1' || !signature) return false;
    const given = Buffer.from(signature, 'base64');
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
};

const hookTrigger = (definition, meta) => {
  const operation = definition.operation;
  // Subscribes the Zap's URL; what it answers (the id and the signing secret) is what Zapier
  // keeps as bundle.subscribeData for perform and performUnsubscribe.
  operation.performSubscribe = async (z, bundle) => {
    const input = bundle.inputData || {};
    const filter = {};
    for (const name of [...meta.args, ...(meta.optional || [])]) {
      if (given(input[name])) filter[name] = String(input[name]);
    }
    const answer = await subscriptionCall(z, bundle, 'POST', '/subscriptions', {
      event: meta.event,
      filter,
      target_url: bundle.targetUrl,
      clientKey: bundle.authData.clientKey,
      clientSecret: bundle.authData.clientSecret,
    });
    if (answer.status !== 201 || !answer.data || !answer.data.id) {
      throw refusal(z, answer, 'subscribe this Zap');
    }
    return answer.data;
  };
  // Gone already (404) is as good as removed.
  operation.performUnsubscribe = async (z, bundle) => {
    const id = (bundle.subscribeData || {}).id;
    if (!given(id)) return {};
    const answer = await subscriptionCall(
      z, bundle, 'DELETE', `/subscriptions/${encodeURIComponent(id)}`,
    );
    if (answer.status !== 204 && answer.status !== 404) {
      throw refusal(z, answer, 'remove the subscription');
    }
    return {};
  };
  // One delivery: its item (a message, a client, a file) as its list block lists it. Where Zapier hands over the raw request,
  // its signature is checked first, and a delivery not signed with this Zap's secret is dropped.
  operation.perform = async (z, bundle) => {
    const raw = bundle.rawRequest;
    const secret = (bundle.subscribeData || {}).secret;
    if (raw && raw.headers && secret && !signedBy(secret, raw.headers, raw.content)) {
      return [];
    }
    const body = bundle.cleanedRequest || {};
    if (body.type !== meta.event || body.data === null || typeof body.data !== 'object') {
      return [];
    }
    return [withId(body.data, meta)];
  };
  // Samples for the Zap editor: the list block's latest items (on the topic, for messages),
  // newest first.
  operation.performList = async (z, bundle) => {
    const input = bundle.inputData || {};
    const result = unwrap(z, await send(z, bundle, meta));
    const items = (Array.isArray(result) ? result : [])
      .filter((item) => !given(input.topic) || item.topic === input.topic)
      .map((item) => withId(item, meta));
    return newestFirst(distinct(items), meta);
  };
  operation.sample = withId(operation.sample, meta);
  return definition;
};

// The connection test gets a token with the connection's key and secret; the token itself is
// not kept in the test's result.
const authentication = (definition, meta) => {
  definition.test = async (z, bundle) => {
    const result = { ...asObject(unwrap(z, await send(z, bundle, meta))) };
    delete result[meta.secret];
    return { clientKey: bundle.authData.clientKey, ...result };
  };
  definition.connectionLabel = (z, bundle) =>
    `${bundle.authData.clientKey} at ${hostOf(bundle)}`;
  return definition;
};

module.exports = { authentication, create, hookTrigger, search, signedBy, trigger, withId };
