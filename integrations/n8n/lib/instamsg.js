'use strict';
// The runtime of the InstaMsg nodes, shared by the action node and the trigger: it turns an
// operation's parameters into a block's arguments and a connector envelope into n8n items or an
// error. Hand-written in connector/generate/n8n_package/ and copied as it is into the generated
// package (make integrations); what depends on the blocks comes from the *.description.json files.

const { createHash, randomUUID } = require('node:crypto');
const { NodeApiError, NodeOperationError } = require('n8n-workflow');

const CREDENTIAL = 'instaMsgApi';

function isEmpty(value) {
	return (
		value === undefined ||
		value === null ||
		value === '' ||
		(typeof value === 'number' && Number.isNaN(value)) ||
		(Array.isArray(value) && value.length === 0)
	);
}

// A resource locator's value (From List or By ID) is the ID itself; a plain value (a workflow
// saved before the locators, or an expression) is taken as it is.
function locatorValue(value) {
	if (value !== null && typeof value === 'object' && 'value' in value) return value.value;
	return value;
}

// A value as the connector reads it. Lists drop their empty entries (n8n adds one per click of
// "Add"); everything else goes as n8n holds it: the connector parses text for numbers, booleans,
// JSON and dates, and names the argument when it cannot.
function argumentValue(kind, value) {
	if (kind === 'locator') return locatorValue(value);
	if (kind === 'list' && Array.isArray(value)) {
		return value.flat().filter((entry) => !isEmpty(entry));
	}
	if (kind === 'dateTime' && value && typeof value.toISO === 'function') {
		return value.toISO();
	}
	return value;
}

function put(args, name, kind, value) {
	const converted = argumentValue(kind, value);
	if (!isEmpty(converted)) args[name] = converted;
}

// The arguments of one operation: its own parameters, then what the user added to its
// collection. Nothing the user left empty is sent.
function collectArguments(context, spec) {
	const args = {};
	for (const [name, kind] of Object.entries(spec.arguments)) {
		put(args, name, kind, context.getNodeParameter(name, undefined));
	}
	if (spec.collection) {
		const added = context.getNodeParameter(spec.collection, {}) || {};
		for (const [name, kind] of Object.entries(spec.collected)) {
			if (name in added) put(args, name, kind, added[name]);
		}
	}
	return args;
}

// The credentials' app key and secret, with every operation that takes them: no operation has a
// sign-in field of its own, and the connector gets and renews the tokens itself.
async function addAppCredentials(context, spec, args) {
	if (!spec.appCredentials) return;
	const credentials = await context.getCredentials(CREDENTIAL);
	args.clientKey = credentials.clientKey;
	args.clientSecret = credentials.clientSecret;
}

// This n8n process, in the node's own keys: execution IDs start again at 1 in every n8n database,
// so two n8n instances (or one set up afresh) using one connector would otherwise send the same
// keys for different calls. n8n retries an item (Retry On Fail) in the process that ran it.
const PROCESS = randomUUID();

// The Idempotency Key of one call: the user's (Options), else one of the node's own, the same on
// n8n's retries of this item and different for every other call: the process, the execution,
// the node, its run and the item. Without an execution (none in some test modes) none is sent.
function idempotencyKey(context) {
	const options = context.getNodeParameter('options', {}) || {};
	if (!isEmpty(options.idempotencyKey)) return String(options.idempotencyKey);
	const execution = context.getExecutionId();
	if (isEmpty(execution)) return undefined;
	const run = context.evaluateExpression('{{ $runIndex }}', context.getItemIndex());
	return `n8n-${PROCESS}-${execution}-${context.getNode().id}-${run}-${context.getItemIndex()}`;
}

// File arguments name a binary field of the input item; the request becomes multipart, with the
// file as the part of the argument's name (its file name and type kept). Skipped when an
// alternative of the argument (uploadFile's fileContent) is given.
async function fileParts(context, spec, args) {
	const files = [];
	for (const [name, alternatives] of Object.entries(spec.fileAlternatives || {})) {
		const field = args[name];
		delete args[name];
		if (isEmpty(field) || alternatives.some((other) => !isEmpty(args[other]))) continue;
		const binary = context.helpers.assertBinaryData(field);
		const bytes = await context.helpers.getBinaryDataBuffer(field);
		files.push({ name, bytes, fileName: binary.fileName || name, mimeType: binary.mimeType });
	}
	return files;
}

async function multipart(args, files) {
	const form = new FormData();
	for (const [name, value] of Object.entries(args)) {
		const values = Array.isArray(value) ? value : [value];
		for (const one of values) {
			form.append(name, typeof one === 'object' ? JSON.stringify(one) : String(one));
		}
	}
	for (const file of files) {
		const blob = new Blob([file.bytes], { type: file.mimeType || 'application/octet-stream' });
		form.append(file.name, blob, file.fileName);
	}
	// The platform's own encoder writes the body and its boundary.
	const encoded = new Response(form);
	return {
		body: Buffer.from(await encoded.arrayBuffer()),
		contentType: encoded.headers.get('content-type'),
	};
}

// A number from 1 to 65535 (publishMessage's id) drawn from the call's key: the same on every retry
// of the call, and spread over the range for different calls.
function numberFromKey(key) {
	const digest = createHash('sha256').update(key).digest();
	return (digest.readUInt32BE(0) % 65535) + 1;
}

// The request of one operation, as n8n's routing sends it (a preSend step).
async function buildRequest(context, operations, requestOptions) {
	const operation = context.getNodeParameter('operation');
	const spec = operations[operation];
	const args = collectArguments(context, spec);
	await addAppCredentials(context, spec, args);
	const files = await fileParts(context, spec, args);
	requestOptions.headers = { ...(requestOptions.headers || {}), Accept: 'application/json' };
	// An operation that changes something always sends an Idempotency Key.
	const key = spec.keyed ? idempotencyKey(context) : undefined;
	if (!isEmpty(key)) requestOptions.headers['Idempotency-Key'] = key;
	// What the node fills itself when the user left it out (publishMessage's id).
	for (const name of spec.chosen || []) {
		if (isEmpty(args[name])) args[name] = numberFromKey(key ?? randomUUID());
	}
	if (files.length) {
		const { body, contentType } = await multipart(args, files);
		requestOptions.body = body;
		requestOptions.headers['Content-Type'] = contentType;
		requestOptions.json = false;
	} else {
		requestOptions.body = args;
		requestOptions.headers['Content-Type'] = 'application/json';
		requestOptions.json = true;
	}
	return requestOptions;
}

function parseBody(body) {
	if (Buffer.isBuffer(body)) body = body.toString('utf8');
	if (typeof body === 'string') {
		try {
			return JSON.parse(body);
		} catch {
			return undefined;
		}
	}
	return body;
}

function isEnvelope(body) {
	return (
		body !== null &&
		typeof body === 'object' &&
		(body.callback === 'success' || body.callback === 'error') &&
		body.contextWrites !== null &&
		typeof body.contextWrites === 'object'
	);
}

// What went wrong, in the connector's words: its message, and the arguments at fault.
function errorDetails(failure) {
	const lines = [];
	if (failure.status_code) lines.push(`Code: ${failure.status_code}`);
	if (Array.isArray(failure.fields) && failure.fields.length) {
		lines.push(`Arguments at fault: ${failure.fields.join(', ')}`);
	}
	for (const [field, problems] of Object.entries(failure.errors || {})) {
		lines.push(`${field}: ${[].concat(problems).join(' ')}`);
	}
	if (failure.retry_after_s !== undefined) lines.push(`Retry after ${failure.retry_after_s} s`);
	if (failure.request_id) lines.push(`Request ID: ${failure.request_id}`);
	return lines.join('\n');
}

// The connector names a block as its API does (updateClient); the form calls it "Update Client".
function inFormWords(text, spec, block) {
	if (!spec || !block || typeof text !== 'string') return text;
	return text.replace(new RegExp(`\\b${block}\\b`, 'g'), `"${spec.label}"`);
}

function envelopeError(context, failure, statusCode, spec, block) {
	const message = failure.status_msg || `The connector answered ${failure.status_code || statusCode}.`;
	const error = new NodeApiError(context.getNode(), failure, {
		message: inFormWords(message, spec, block),
		description: errorDetails(failure),
		httpCode: String(statusCode),
	});
	error.context.envelope = failure;
	return error;
}

function notAnEnvelope(context, statusCode) {
	return new NodeOperationError(
		context.getNode(),
		`The connector answered HTTP ${statusCode} without an envelope.`,
		{ description: 'Check the Connector URL of the credentials: it should be the connector itself.' },
	);
}

// The items of one answer: the block's result, an object as one item and a list as one item per
// element. Warnings (arguments the block does not take) ride on every item as `warnings`.
function resultItems(envelope, spec, block) {
	const result = envelope.contextWrites.to;
	const warnings = Array.isArray(envelope.warnings) && envelope.warnings.length
		? envelope.warnings.map((warning) => inFormWords(warning, spec, block))
		: null;
	const list = Array.isArray(result) ? result : [result];
	return list.map((element) => {
		const json = element !== null && typeof element === 'object' && !Array.isArray(element)
			? { ...element }
			: { result: element };
		if (warnings) json.warnings = warnings;
		return { json };
	});
}

function headerOf(response, name) {
	for (const [key, value] of Object.entries(response.headers || {})) {
		if (key.toLowerCase() === name) return String(value);
	}
	return undefined;
}

// A postReceive step: the envelope to items, or the error the user sees.
async function readEnvelope(context, operations, response) {
	const envelope = parseBody(response.body);
	if (!isEnvelope(envelope)) {
		const error = notAnEnvelope(context, response.statusCode);
		if (context.continueOnFail()) return [{ json: { error: { status_msg: error.message } } }];
		throw error;
	}
	const operation = context.getNodeParameter('operation');
	const spec = operations[operation];
	if (envelope.callback !== 'success') {
		const failure = envelope.contextWrites.to || {};
		const error = envelopeError(context, failure, response.statusCode, spec, operation);
		// Continue On Fail: the item carries the envelope's error as `error` (n8n's error output
		// takes such items; an item with an error object would lose the envelope to its message).
		if (context.continueOnFail()) return [{ json: { error: failure } }];
		throw error;
	}
	let items = resultItems(envelope, spec, operation);
	// Return All / Limit: the connector reads the whole list; the node keeps its first Limit.
	if (spec.list && !context.getNodeParameter('returnAll', false)) {
		items = items.slice(0, context.getNodeParameter('limit', items.length));
	}
	// The answer an Idempotency Key already held (the call was not sent again): said on the item.
	if (headerOf(response, 'idempotent-replayed') === 'true') {
		for (const item of items) item.json.idempotentReplayed = true;
	}
	if (spec.binaryOutput) {
		for (const item of items) {
			const { content, ...rest } = item.json;
			const bytes = Buffer.from(String(content || ''), 'base64');
			item.binary = {
				[spec.binaryOutput]: await context.helpers.prepareBinaryData(
					bytes,
					rest.filename,
					rest.contentType,
				),
			};
			item.json = rest;
		}
	}
	return items;
}

// One block call outside n8n's routing (the trigger's, a list search's): the credentials' URL,
// API key and app.
async function callBlock(context, name, args) {
	const credentials = await context.getCredentials(CREDENTIAL);
	const body = { ...args, clientKey: credentials.clientKey, clientSecret: credentials.clientSecret };
	const response = await context.helpers.httpRequestWithAuthentication.call(context, CREDENTIAL, {
		method: 'POST',
		baseURL: String(credentials.baseUrl).replace(/\/+$/, ''),
		url: `/blocks/${name}`,
		body,
		json: true,
		ignoreHttpStatusErrors: true,
		returnFullResponse: true,
	});
	const envelope = parseBody(response.body);
	if (!isEnvelope(envelope)) throw notAnEnvelope(context, response.statusCode);
	if (envelope.callback !== 'success') {
		throw envelopeError(context, envelope.contextWrites.to || {}, response.statusCode);
	}
	return envelope.contextWrites.to;
}

// -- list searches (resource locators' From List) -------------------------------------------------

function matching(filter, ...texts) {
	if (isEmpty(filter)) return true;
	const wanted = String(filter).toLowerCase();
	return texts.some((text) => String(text ?? '').toLowerCase().includes(wanted));
}

function listed(records, filter) {
	return {
		results: records
			.filter((record) => matching(filter, record.name, record.id))
			.map((record) => ({ name: record.name ? `${record.name} (${record.id})` : String(record.id), value: record.id })),
	};
}

// The tenants of the credential's app, for every Tenant picked From List.
async function searchTenants(filter) {
	return listed(await callBlock(this, 'getTenants', {}), filter);
}

// The clients of the tenant chosen above it in the form; none until a tenant is chosen (or
// while it is an expression, which only a run can evaluate).
async function searchClients(filter) {
	const tenantId = locatorValue(this.getCurrentNodeParameter('tenantId'));
	if (isEmpty(tenantId) || String(tenantId).startsWith('=')) return { results: [] };
	return listed(await callBlock(this, 'getClients', { tenantId }), filter);
}

const listSearch = { searchTenants, searchClients };

module.exports = { buildRequest, readEnvelope, callBlock, isEmpty, locatorValue, listSearch, CREDENTIAL };
