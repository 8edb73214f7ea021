'use strict';
// The InstaMsg node: one operation per block of the connector, declarative (n8n's routing sends
// POST /blocks/<name>). Its parameters and operations are generated from the connector's
// manifest into InstaMsg.description.json; this file only wires them to lib/instamsg.js.
// Laid out as n8n's own resource/operation nodes are (Slack, Airtable): actions named
// "Get many tenants", Return All / Limit on lists, rarely used settings under Options, sign-in
// in the credential only, a codex file (InstaMsg.node.json) for the node panel's search.

const description = require('./InstaMsg.description.json');
const { buildRequest, readEnvelope, listSearch, CREDENTIAL } = require('../../lib/instamsg');

const { operations } = description;

async function sendArguments(requestOptions) {
	return await buildRequest(this, operations, requestOptions);
}

async function receiveEnvelope(items, response) {
	return await readEnvelope(this, operations, response);
}

function routing(block) {
	return {
		request: { method: 'POST', url: `/blocks/${block}`, ignoreHttpStatusErrors: true },
		send: { preSend: [sendArguments] },
		output: { postReceive: [receiveEnvelope] },
	};
}

function withRouting(property) {
	if (property.name !== 'operation') return property;
	return {
		...property,
		options: property.options.map((option) => ({ ...option, routing: routing(option.value) })),
	};
}

class InstaMsg {
	constructor() {
		this.description = {
			displayName: 'InstaMsg',
			name: 'instaMsg',
			icon: 'file:instamsg.svg',
			group: ['transform'],
			version: 1,
			// The operation's action in words (as Slack's "create: channel"), not its block name.
			subtitle: description.subtitle,
			description: description.description,
			defaults: { name: 'InstaMsg' },
			inputs: ['main'],
			outputs: ['main'],
			credentials: [{ name: CREDENTIAL, required: true }],
			requestDefaults: {
				baseURL: '={{String($credentials.baseUrl).replace(/\\/+$/, "")}}',
				headers: { Accept: 'application/json' },
			},
			properties: description.properties.map(withRouting),
		};
		// Tenants and clients picked From List (resource locators, as Airtable's Base).
		this.methods = { listSearch };
	}
}

module.exports = { InstaMsg };
