'use strict';
// The InstaMsg credentials: where the connector answers, its API key, and the InstaMsg app's key
// and secret, sent with every call (the fields are generated from the manifest into
// InstaMsgApi.description.json). Modelled on n8n's own credentials with a test request
// (SlackApi, AirtableTokenApi): the test is a call the operations depend on.

const description = require('./InstaMsgApi.description.json');

class InstaMsgApi {
	constructor() {
		this.name = 'instaMsgApi';
		this.displayName = 'InstaMsg API';
		this.icon = 'file:instamsg.svg';
		this.documentationUrl = description.documentationUrl;
		this.properties = description.properties;
		// The test is a real call with what every operation sends: it gets an access token with
		// the app's key and secret, through the connector at the URL, with its API key. So a
		// credential passes only when the operations can run with it.
		this.test = {
			request: {
				baseURL: '={{String($credentials.baseUrl).replace(/\\/+$/, "")}}',
				url: `/blocks/${description.testBlock}`,
				method: 'POST',
				body: {
					clientKey: '={{$credentials.clientKey}}',
					clientSecret: '={{$credentials.clientSecret}}',
				},
				json: true,
			},
			// n8n shows a fixed message per HTTP status here (else the status text alone).
			rules: [
				{
					type: 'responseCode',
					properties: {
						value: 401,
						message:
							'Refused (HTTP 401): check the Connector API Key, and the Client Key and Client Secret of your InstaMsg app.',
					},
				},
				{
					type: 'responseCode',
					properties: {
						value: 422,
						message: 'Give both the Client Key and the Client Secret of your InstaMsg app (HTTP 422).',
					},
				},
			],
		};
	}

	// X-API-Key only when one is set: an empty header would be refused where keys are required.
	async authenticate(credentials, requestOptions) {
		if (credentials.apiKey) {
			requestOptions.headers = { ...(requestOptions.headers || {}), 'X-API-Key': credentials.apiKey };
		}
		return requestOptions;
	}
}

module.exports = { InstaMsgApi };
