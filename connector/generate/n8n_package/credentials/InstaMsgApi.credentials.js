'use strict';
// The InstaMsg credentials: where the connector answers, its API key, and the InstaMsg app's key
// and secret (the fields are generated from the manifest into InstaMsgApi.description.json).

const properties = require('./InstaMsgApi.description.json');

class InstaMsgApi {
	constructor() {
		this.name = 'instaMsgApi';
		this.displayName = 'InstaMsg API';
		this.documentationUrl = 'https://www.instamsg.io';
		this.properties = properties;
		// The test gets an access token with the app's key and secret, so it proves the URL, the
		// API key and the app at once; without an app it lists the connector's blocks.
		this.test = {
			request: {
				baseURL: '={{String($credentials.baseUrl).replace(/\\/+$/, "")}}',
				url: '={{$credentials.clientKey ? "/blocks/getAccessToken" : "/blocks"}}',
				method: '={{$credentials.clientKey ? "POST" : "GET"}}',
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
						message: 'Give the Client Key together with its Client Secret (HTTP 422).',
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
