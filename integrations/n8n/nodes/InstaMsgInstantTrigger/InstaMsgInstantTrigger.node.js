'use strict';
// The InstaMsg Instant Trigger: the connector pushes each new message of one client (or new
// client of a tenant, or new file of a client: the Event option) to this node's webhook URL the
// moment its watcher sees it (README, "Instant triggers"), instead of the workflow polling
// InstaMsg. Modelled on n8n's own webhook-based triggers, Stripe Trigger above
// all: webhookMethods create the subscription when the workflow is published, check it still
// exists, and delete it when the workflow is unpublished; the subscription's id and signing
// secret live in the node's static data; webhook() checks the signature before emitting.
// Its parameters are generated from the manifest and the connector's events' table
// (InstaMsgInstantTrigger.description.json: `events` says, per Event option, the event and the
// parameters that make its filter).

const { NodeApiError } = require('n8n-workflow');
const description = require('./InstaMsgInstantTrigger.description.json');
const { locatorValue, listSearch, CREDENTIAL } = require('../../lib/instamsg');
const { verified } = require('../../lib/signature');

// One call to the connector's /subscriptions routes, with the credential's URL and API key.
async function connector(context, method, path, body) {
	const credentials = await context.getCredentials(CREDENTIAL);
	return await context.helpers.httpRequestWithAuthentication.call(context, CREDENTIAL, {
		method,
		baseURL: String(credentials.baseUrl).replace(/\/+$/, ''),
		url: path,
		...(body ? { body } : {}),
		json: true,
		ignoreHttpStatusErrors: true,
		returnFullResponse: true,
	});
}

// The chosen Event option's event and filter fields (workflows saved before the option had
// other values hold newMessage, its default).
function chosenEvent(context) {
	return description.events[context.getNodeParameter('event', 'newMessage')] || description.events.newMessage;
}

function refused(context, response, what) {
	const to = (response.body && response.body.contextWrites && response.body.contextWrites.to) || {};
	return new NodeApiError(context.getNode(), to, {
		message: `The connector refused to ${what} (HTTP ${response.statusCode})`,
		description: to.status_msg || 'Check the Connector URL and API Key of the credentials.',
		httpCode: String(response.statusCode),
	});
}

class InstaMsgInstantTrigger {
	constructor() {
		this.description = {
			displayName: 'InstaMsg Instant Trigger',
			name: 'instaMsgInstantTrigger',
			icon: 'file:instamsg.svg',
			group: ['trigger'],
			version: 1,
			subtitle: '={{ {newClient: "new client", newFile: "new file"}[$parameter["event"]] || $parameter["topic"] || "every topic" }}',
			description: 'Starts the workflow the moment InstaMsg has a new message, client or file',
			defaults: { name: 'InstaMsg Instant Trigger' },
			inputs: [],
			outputs: ['main'],
			credentials: [{ name: CREDENTIAL, required: true }],
			webhooks: [{ name: 'default', httpMethod: 'POST', responseMode: 'onReceived', path: 'webhook' }],
			properties: description.properties,
		};
		this.methods = { listSearch };
		this.webhookMethods = {
			default: {
				async checkExists() {
					const state = this.getWorkflowStaticData('node');
					if (!state.subscriptionId) return false;
					const response = await connector(this, 'GET', `/subscriptions/${encodeURIComponent(state.subscriptionId)}`);
					if (response.statusCode === 404) {
						delete state.subscriptionId;
						delete state.secret;
						return false;
					}
					if (response.statusCode !== 200) throw refused(this, response, 'show the subscription');
					// Another URL (n8n's WEBHOOK_URL changed) or one the connector disabled: removed
					// here, so that create() makes a fresh one and no stale one lingers.
					const record = response.body || {};
					if (record.target_url === this.getNodeWebhookUrl('default') && !record.disabled) return true;
					await connector(this, 'DELETE', `/subscriptions/${encodeURIComponent(state.subscriptionId)}`);
					delete state.subscriptionId;
					delete state.secret;
					return false;
				},
				async create() {
					const credentials = await this.getCredentials(CREDENTIAL);
					const chosen = chosenEvent(this);
					const filter = {};
					for (const name of chosen.filter) filter[name] = locatorValue(this.getNodeParameter(name));
					for (const name of chosen.optional) {
						const value = this.getNodeParameter(name, '');
						if (value) filter[name] = value;
					}
					const response = await connector(this, 'POST', '/subscriptions', {
						event: chosen.event,
						filter,
						target_url: this.getNodeWebhookUrl('default'),
						clientKey: credentials.clientKey,
						clientSecret: credentials.clientSecret,
					});
					const made = response.body || {};
					if (response.statusCode !== 201 || !made.id || !made.secret) {
						throw refused(this, response, 'subscribe this workflow');
					}
					const state = this.getWorkflowStaticData('node');
					state.subscriptionId = made.id;
					state.secret = made.secret;
					return true;
				},
				async delete() {
					const state = this.getWorkflowStaticData('node');
					if (state.subscriptionId) {
						const response = await connector(this, 'DELETE', `/subscriptions/${encodeURIComponent(state.subscriptionId)}`);
						// Gone already is as good as removed.
						if (response.statusCode !== 204 && response.statusCode !== 404) return false;
					}
					delete state.subscriptionId;
					delete state.secret;
					return true;
				},
			},
		};
	}

	async webhook() {
		const request = this.getRequestObject();
		const state = this.getWorkflowStaticData('node');
		if (!verified(state.secret, this.getHeaderData(), request.rawBody)) {
			// Not from our subscription (or replayed late): refused, and no execution.
			this.getResponseObject().status(401).send('Unauthorized').end();
			return { noWebhookResponse: true };
		}
		const body = this.getBodyData();
		if (body.type !== chosenEvent(this).event || !body.data) return {};
		return { workflowData: [[{ json: body.data }]] };
	}
}

module.exports = { InstaMsgInstantTrigger };
