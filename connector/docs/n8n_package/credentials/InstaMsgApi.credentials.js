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
