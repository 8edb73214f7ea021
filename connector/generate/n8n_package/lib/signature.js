'use strict';
// Standard Webhooks signatures, as the connector signs its deliveries (README, "Instant
// triggers"): kept apart from n8n's own modules so that a test can run it with Node alone.

const { createHmac, timingSafeEqual } = require('node:crypto');

// A delivery older or newer than this (seconds) is refused, as Standard Webhooks advises: a
// signed request recorded once cannot be replayed later.
const TOLERANCE_SECONDS = 5 * 60;

// Standard Webhooks: HMAC-SHA256 of "id.timestamp.body" keyed with the secret's base64 part;
// the header holds one or more "v1,<base64 signature>" separated by spaces.
function verified(secret, headers, rawBody, now = Date.now() / 1000) {
	const id = headers['webhook-id'];
	const timestamp = headers['webhook-timestamp'];
	const signatures = headers['webhook-signature'];
	if (!secret || !id || !timestamp || !signatures || rawBody === undefined) return false;
	const at = Number(timestamp);
	if (!Number.isFinite(at) || Math.abs(now - at) > TOLERANCE_SECONDS) return false;
	const key = Buffer.from(String(secret).replace(/^whsec_/, ''), 'base64');
	const body = Buffer.isBuffer(rawBody) ? rawBody.toString('utf8') : String(rawBody);
	const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
	return String(signatures)
		.split(' ')
		.some((entry) => {
			const [version, signature] = entry.split(',');
			if (version !== 'v1' || !signature) return false;
			const given = Buffer.from(signature, 'base64');
			return given.length === expected.length && timingSafeEqual(given, expected);
		});
}

module.exports = { verified, TOLERANCE_SECONDS };
