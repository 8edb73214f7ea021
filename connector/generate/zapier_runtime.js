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

module.exports = { authentication, create, search, trigger, withId };
