'use strict';
// The InstaMsg Trigger: polls getMessages for one client and starts the workflow with each new
// message, once. Its parameters are generated from the manifest (InstaMsgTrigger.description.json).
//
// What "new" means, kept in the workflow's static data (saved by n8n across polls and restarts):
// the client it watches, the newest created_at seen, and the IDs seen at that instant. The first
// poll after a user activates the workflow (or changes the tenant, client or topic) only notes
// where the list ends, so nothing older than the activation is emitted; after n8n restarts it
// carries on where it was. A manual test emits the latest message.

const description = require('./InstaMsgTrigger.description.json');
const { callBlock, locatorValue, listSearch, CREDENTIAL } = require('../../lib/instamsg');

// The poll contexts already polled in this process: n8n makes one per activation.
const polled = new WeakSet();

function byAge(a, b) {
	return (Number(a.created_at) || 0) - (Number(b.created_at) || 0) ||
		String(a.id).localeCompare(String(b.id), undefined, { numeric: true });
}

function watermark(messages, previous) {
	let since = previous.since;
	let seen = previous.seen || [];
	for (const message of messages) {
		const at = Number(message.created_at) || 0;
		if (since === undefined || since === null || at > since) {
			since = at;
			seen = [];
		}
		if (at === since && !seen.includes(String(message.id))) seen = [...seen, String(message.id)];
	}
	return { since, seen };
}

class InstaMsgTrigger {
	constructor() {
		this.description = {
			displayName: 'InstaMsg Trigger',
			name: 'instaMsgTrigger',
			icon: 'file:instamsg.svg',
			group: ['trigger'],
			version: 1,
			subtitle: '={{$parameter["topic"] || "every topic"}}',
			description: 'Starts the workflow with each new message of an InstaMsg client',
			defaults: { name: 'InstaMsg Trigger' },
			polling: true,
			inputs: [],
			outputs: ['main'],
			credentials: [{ name: CREDENTIAL, required: true }],
			properties: description.properties,
		};
		// The trigger has no input to drag an ID from: its tenant and client are picked From List.
		this.methods = { listSearch };
	}

	async poll() {
		const tenantId = locatorValue(this.getNodeParameter('tenantId'));
		const clientId = locatorValue(this.getNodeParameter('clientId'));
		const topic = this.getNodeParameter('topic', '');
		const onTopic = (message) => !topic || message.topic === topic;
		const state = this.getWorkflowStaticData('node');
		const key = JSON.stringify([tenantId, clientId, topic]);

		if (this.getMode() === 'manual') {
			const messages = (await callBlock(this, description.block, { tenantId, clientId }))
				.filter(onTopic)
				.sort(byAge);
			return messages.length ? [[{ json: messages[messages.length - 1] }]] : null;
		}

		const firstOfActivation = !polled.has(this);
		polled.add(this);
		// Only a user's activation starts afresh; n8n starting ('init'), a saved edit ('update') or
		// another main instance taking over carry on from the static data.
		const fresh = state.key !== key || (firstOfActivation && this.getActivationMode() === 'activate');
		const args = { tenantId, clientId };
		if (!fresh && state.since) args.start = state.since;
		const messages = (await callBlock(this, description.block, args)).filter(onTopic).sort(byAge);

		if (fresh) {
			// Where the list ends now: only what comes after is new.
			const mark = watermark(messages, {});
			state.key = key;
			state.since = mark.since ?? null;
			state.seen = mark.seen;
			return null;
		}
		const seen = new Set(state.seen || []);
		const since = state.since ?? null;
		const news = messages.filter(
			(m) => !seen.has(String(m.id)) && (since === null || (Number(m.created_at) || 0) >= since),
		);
		if (!news.length) return null;
		const mark = watermark(news, { since, seen: state.seen || [] });
		state.since = mark.since;
		state.seen = mark.seen;
		return [news.map((message) => ({ json: message }))];
	}
}

module.exports = { InstaMsgTrigger };
