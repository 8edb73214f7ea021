// The InstaMsg connector playground. Every form is drawn from /manifest.json at run time;
// nothing here knows a block by name. Answers are shown with textContent only, never parsed
// as HTML, and the page's Content-Security-Policy allows no inline script in any case.
"use strict";

(function () {
  const KEY_STORE = "instamsg-playground.apiKey";
  // Types whose value is JSON text in a textarea, checked before it is sent.
  const JSON_TYPES = new Set(["JSON", "Map", "Array"]);

  const $ = (id) => document.getElementById(id);
  const ui = {
    block: $("block"),
    description: $("description"),
    oneOf: $("one-of"),
    args: $("args"),
    argList: $("arg-list"),
    form: $("run-form"),
    run: $("run"),
    copyCurl: $("copy-curl"),
    status: $("status"),
    result: $("result"),
    resultSection: $("result-section"),
    curlSection: $("curl-section"),
    curl: $("curl"),
    curlStatus: $("curl-status"),
    sandbox: $("sandbox"),
    useDemo: $("use-demo"),
    keySection: $("key-section"),
    keyForm: $("key-form"),
    keyInput: $("api-key"),
    keyStatus: $("key-status"),
    forgetKey: $("forget-key"),
    tokenNote: $("token-note"),
    forgetToken: $("forget-token"),
    loadError: $("load-error"),
  };

  const state = {
    config: { sandbox: false, api_keys: false },
    blocks: new Map(), // name -> manifest entry
    fields: [], // [{arg, kind, input}] of the block on show
    accessToken: "", // from the last getAccessToken answer, in memory only
    ids: {}, // tenantId and clientId from the last calls that named or made them
  };

  // -- small helpers ----------------------------------------------------------------------

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children || []) {
      node.append(child);
    }
    return node;
  }

  function apiKey() {
    try {
      return sessionStorage.getItem(KEY_STORE) || "";
    } catch (e) {
      return "";
    }
  }

  function headers(extra) {
    const all = Object.assign({ Accept: "application/json" }, extra || {});
    const key = apiKey();
    if (state.config.api_keys && key) {
      all["X-API-Key"] = key;
    }
    return all;
  }

  function showError(text) {
    ui.loadError.textContent = text;
    ui.loadError.hidden = !text;
  }

  function askForKey(message) {
    ui.keySection.hidden = false;
    ui.keyStatus.textContent = message;
    ui.keyInput.focus();
  }

  // A field's type as the manifest names it; unknown types, and a Select that lists no
  // options, are drawn as text.
  function fieldKind(arg) {
    if (Array.isArray(arg.options) && arg.options.length) {
      return "Select";
    }
    const type = String(arg.type || "String");
    return type === "Select" ? "String" : type;
  }

  // -- loading ----------------------------------------------------------------------------

  async function start() {
    try {
      const reply = await fetch("/playground/config.json", { headers: { Accept: "application/json" } });
      if (reply.ok) {
        state.config = await reply.json();
      } else if (reply.status === 401) {
        state.config.api_keys = true; // an older connector that keeps even this behind the key
      }
    } catch (e) {
      // Without the facts the page still works: no banner, no key prompt until a 401.
    }
    if (state.config.sandbox) {
      ui.sandbox.hidden = false;
      const demo = state.config.demo;
      if (demo) {
        $("demo-key").textContent = demo.clientKey;
        $("demo-secret").textContent = demo.clientSecret;
      } else {
        ui.useDemo.hidden = true;
      }
    }
    if (state.config.api_keys) {
      ui.keySection.hidden = false;
      if (!apiKey()) {
        askForKey("Enter the API key to load the blocks.");
        return;
      }
      ui.keyStatus.textContent = "A key is set for this tab.";
    }
    await loadManifest();
  }

  async function loadManifest() {
    let reply;
    try {
      reply = await fetch("/manifest.json", { headers: headers() });
    } catch (e) {
      showError("The manifest could not be fetched: is the connector running?");
      return;
    }
    if (reply.status === 401) {
      askForKey("The connector refused the key. Enter a valid API key.");
      return;
    }
    if (!reply.ok) {
      showError("The manifest could not be read (HTTP " + reply.status + ").");
      return;
    }
    showError("");
    const manifest = await reply.json();
    const blocks = Array.isArray(manifest.blocks) ? manifest.blocks : Object.values(manifest.blocks || {});
    state.blocks.clear();
    ui.block.replaceChildren();
    for (const entry of blocks) {
      if (!entry || typeof entry.name !== "string") {
        continue;
      }
      state.blocks.set(entry.name, entry);
      ui.block.append(el("option", { value: entry.name, textContent: entry.name }));
    }
    ui.block.disabled = false;
    ui.run.disabled = false;
    ui.copyCurl.disabled = false;
    const wanted = decodeURIComponent(location.hash.slice(1));
    if (state.blocks.has(wanted)) {
      ui.block.value = wanted;
    }
    drawBlock();
  }

  // -- drawing a block's form -------------------------------------------------------------

  function drawBlock() {
    const entry = state.blocks.get(ui.block.value);
    state.fields = [];
    ui.argList.replaceChildren();
    if (!entry) {
      ui.description.textContent = "";
      ui.args.hidden = true;
      return;
    }
    ui.description.textContent = entry.description || "";
    drawOneOf(entry.oneOf);
    const args = Array.isArray(entry.args) ? entry.args : [];
    args.forEach((arg, index) => {
      if (arg && typeof arg.name === "string") {
        ui.argList.append(drawField(arg, index));
      }
    });
    ui.args.hidden = args.length === 0;
    offerToken();
    offerIds();
    history.replaceState(null, "", "#" + encodeURIComponent(entry.name));
  }

  // A block may say which groups of arguments stand in for each other (e.g. accessToken, or
  // clientKey and clientSecret). Shown when the manifest has it in a shape we can read.
  function drawOneOf(groups) {
    const words = [];
    for (const group of Array.isArray(groups) ? groups : []) {
      const names = Array.isArray(group) ? group : group && (group.args || group.required);
      if (Array.isArray(names) && names.every((n) => typeof n === "string")) {
        words.push(names.join(" and "));
      }
    }
    ui.oneOf.textContent = words.length > 1 ? "Give one of: " + words.join(", or ") + "." : "";
    ui.oneOf.hidden = words.length < 2;
  }

  function drawField(arg, index) {
    const id = "arg-" + index;
    const kind = fieldKind(arg);
    const required = arg.required === true;
    const input = makeInput(arg, kind);
    input.id = id;
    input.name = arg.name;
    input.dataset.kind = kind;
    if (required) {
      input.setAttribute("aria-required", "true");
    }
    const field = { arg: arg, kind: kind, input: input };
    state.fields.push(field);

    const label = el("label", { htmlFor: id, textContent: arg.name });
    const head = el("div", { className: "field-head" }, [label]);
    head.append(el("span", { className: "type", textContent: kind === "Select" && arg.type !== "Select" ? arg.type + ", one of" : String(arg.type || "String") }));
    if (required) {
      head.append(el("span", { className: "required", textContent: "required" }));
    }
    const hint = el("p", { className: "hint", id: id + "-hint" });
    const words = [arg.description || arg.info || ""];
    if (arg.default !== undefined && arg.default !== null) {
      words.push("Default: " + shown(arg.default) + ".");
    }
    hint.textContent = words.filter(Boolean).join(" ");
    input.setAttribute("aria-describedby", hint.id);

    const row = el("div", { className: "field field-" + kind.toLowerCase() }, [head]);
    if (input.type === "checkbox") {
      // A required switch: always sent, as it shows.
      const said = el("span", { className: "bool-state", textContent: String(input.checked) });
      input.addEventListener("change", () => {
        said.textContent = String(input.checked);
      });
      row.append(el("div", { className: "bool" }, [input, said]));
    } else {
      row.append(input);
    }
    if (JSON_TYPES.has(kind)) {
      const problem = el("p", { className: "problem", id: id + "-problem", role: "alert" });
      input.addEventListener("input", () => checkJson(field, problem));
      input.setAttribute("aria-describedby", hint.id + " " + problem.id);
      field.problem = problem;
      row.append(problem);
    }
    row.append(hint);
    return row;
  }

  function shown(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function makeInput(arg, kind) {
    // "e.g." so that an example is not taken for a value already filled in.
    const example =
      arg.example !== undefined && arg.example !== null ? "e.g. " + shown(arg.example) : "";
    switch (kind) {
      case "credentials":
        return el("input", { type: "password", autocomplete: "off", spellcheck: false });
      case "Number":
        return el("input", { type: "number", step: "any", inputMode: "decimal", placeholder: example });
      case "Boolean": {
        if (arg.required) {
          const box = el("input", { type: "checkbox" });
          box.checked = arg.default === true;
          return box;
        }
        // An optional switch has three states: not sent (InstaMsg's default applies), true
        // or false; a checkbox could not go back to "not sent" once clicked.
        const select = el("select");
        select.append(el("option", { value: "", textContent: "— not sent —" }));
        for (const value of ["true", "false"]) {
          select.append(el("option", { value: value, textContent: value }));
        }
        return select;
      }
      case "Select": {
        const select = el("select");
        select.append(el("option", { value: "", textContent: arg.required ? "— choose —" : "— not sent —" }));
        for (const option of arg.options) {
          select.append(el("option", { value: String(option), textContent: String(option) }));
        }
        if (arg.default !== undefined && arg.default !== null) {
          select.value = String(arg.default);
        }
        return select;
      }
      case "Datepicker":
        return el("input", { type: "datetime-local", step: "1" });
      case "JSON":
      case "Map":
      case "Array":
        return el("textarea", { rows: 4, spellcheck: false, placeholder: example });
      case "File":
        return el("input", { type: "file" });
      default:
        return el("input", { type: "text", spellcheck: false, autocomplete: "off", placeholder: example });
    }
  }

  // JSON text for JSON/Map/Array fields; a Map may also be written "lat,lng".
  function checkJson(field, problem) {
    const text = field.input.value.trim();
    let message = "";
    if (text) {
      try {
        JSON.parse(text);
      } catch (e) {
        if (!(field.kind === "Map" && /^\s*-?[\d.]+\s*,\s*-?[\d.]+\s*$/.test(text))) {
          message = "Not valid JSON: " + e.message;
        }
      }
    }
    problem.textContent = message;
    field.input.setCustomValidity(message);
    field.input.setAttribute("aria-invalid", message ? "true" : "false");
    return !message;
  }

  // -- the access token and the demo credentials -----------------------------------------

  function offerToken() {
    let offered = false;
    for (const field of state.fields) {
      if (field.arg.name !== "accessToken" || !state.accessToken) {
        continue;
      }
      if (!field.input.value) {
        field.input.value = state.accessToken;
      }
      offered = offered || field.input.value === state.accessToken;
    }
    ui.tokenNote.hidden = !offered;
  }

  // The tenant and client a flow works on, carried to the next blocks like the token: the
  // ids the last successful call named, or the one it answered. Which argument an answered id
  // fills comes from the manifest: a block tagged "tenants" answers a tenant, so its id is
  // the tenantId of the next blocks.
  const CARRIED = ["tenantId", "clientId"];

  function takeIds(name, sent, envelope) {
    if (!envelope || envelope.callback !== "success") {
      return;
    }
    for (const key of CARRIED) {
      if (typeof sent[key] === "string" && sent[key]) {
        state.ids[key] = sent[key];
      }
    }
    const entry = state.blocks.get(name) || {};
    const answered = typeof entry.tag === "string" ? entry.tag.replace(/s$/, "") + "Id" : "";
    const result = Object.values(envelope.contextWrites || {})[0];
    const id = result && !Array.isArray(result) ? result.id : undefined;
    if (CARRIED.includes(answered) && (typeof id === "string" || typeof id === "number")) {
      if (answered === "tenantId" && state.ids.tenantId !== String(id)) {
        delete state.ids.clientId; // another tenant: its clients are others
      }
      state.ids[answered] = String(id);
    }
  }

  function offerIds() {
    for (const field of state.fields) {
      const known = state.ids[field.arg.name];
      if (known && !field.input.value) {
        field.input.value = known;
      }
    }
  }

  // The arguments an error envelope names are marked on the form.
  function markFields(envelope) {
    const error = envelope && envelope.callback === "error"
      ? Object.values(envelope.contextWrites || {})[0] : null;
    const named = new Set(error && Array.isArray(error.fields) ? error.fields : []);
    for (const field of state.fields) {
      if (field.kind !== "JSON" && field.kind !== "Map" && field.kind !== "Array") {
        field.input.setAttribute("aria-invalid", named.has(field.arg.name) ? "true" : "false");
      }
    }
  }

  function takeToken(envelope) {
    if (!envelope || envelope.callback !== "success" || typeof envelope.contextWrites !== "object") {
      return;
    }
    for (const value of Object.values(envelope.contextWrites || {})) {
      if (value && typeof value.access_token === "string" && value.access_token) {
        state.accessToken = value.access_token;
      }
    }
  }

  function useDemo() {
    const demo = state.config.demo || {};
    let filled = 0;
    for (const field of state.fields) {
      if (field.arg.name in demo) {
        field.input.value = demo[field.arg.name];
        filled += 1;
      }
    }
    ui.status.textContent = filled
      ? "Demo credentials filled in."
      : "This block takes no clientKey or clientSecret.";
  }

  // -- the call ---------------------------------------------------------------------------

  // The arguments as they will be sent, or null (with focus on the culprit) when one is bad.
  function collect() {
    const args = {};
    let file = null;
    for (const field of state.fields) {
      const { arg, kind, input } = field;
      switch (kind) {
        case "Boolean":
          if (input.type === "checkbox") {
            args[arg.name] = input.checked;
          } else if (input.value !== "") {
            args[arg.name] = input.value === "true";
          }
          break;
        case "Number":
        case "Select": {
          if (input.value === "") {
            break;
          }
          const number = Number(input.value);
          const numeric = arg.type === "Number" && Number.isFinite(number);
          args[arg.name] = numeric ? number : input.value;
          break;
        }
        case "Datepicker": {
          if (input.value === "") {
            break;
          }
          const when = new Date(input.value); // the browser's local time
          args[arg.name] = Number.isNaN(when.getTime()) ? input.value : when.toISOString();
          break;
        }
        case "JSON":
        case "Map":
        case "Array": {
          const text = input.value.trim();
          if (!text) {
            break;
          }
          if (!checkJson(field, field.problem)) {
            input.focus();
            return null;
          }
          try {
            args[arg.name] = JSON.parse(text);
          } catch (e) {
            args[arg.name] = text; // a Map as "lat,lng"
          }
          break;
        }
        case "File":
          if (input.files && input.files.length) {
            file = { name: arg.name, file: input.files[0] };
          }
          break;
        default:
          if (input.value !== "") {
            args[arg.name] = input.value;
          }
      }
    }
    return { args: args, file: file };
  }

  function asText(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  async function run(event) {
    event.preventDefault();
    const name = ui.block.value;
    const call = collect();
    if (!name || !call) {
      return;
    }
    let body;
    const extra = {};
    if (call.file) {
      body = new FormData();
      for (const [key, value] of Object.entries(call.args)) {
        body.append(key, asText(value));
      }
      body.append(call.file.name, call.file.file, call.file.file.name);
    } else {
      body = JSON.stringify(call.args);
      extra["Content-Type"] = "application/json";
    }
    ui.run.disabled = true;
    ui.status.textContent = "Running " + name + "…";
    ui.resultSection.dataset.callback = "";
    const started = performance.now();
    try {
      const reply = await fetch("/blocks/" + encodeURIComponent(name), {
        method: "POST",
        headers: headers(extra),
        body: body,
      });
      const text = await reply.text();
      const took = Math.round(performance.now() - started);
      const envelope = show(reply, text, took);
      takeIds(name, call.args, envelope);
      markFields(envelope);
      offerIds();
    } catch (e) {
      ui.status.textContent = "The call did not complete: " + e.message;
      ui.result.textContent = "";
    } finally {
      ui.run.disabled = false;
    }
  }

  function show(reply, text, took) {
    let envelope = null;
    try {
      envelope = JSON.parse(text);
    } catch (e) {
      envelope = null;
    }
    const outcome = envelope && typeof envelope.callback === "string" ? envelope.callback : "";
    ui.resultSection.dataset.callback = outcome;
    ui.status.textContent =
      "HTTP " + reply.status + (reply.statusText ? " " + reply.statusText : "") +
      (outcome ? " · " + outcome : "") + " · " + took + " ms";
    // textContent: whatever the answer holds (markup included) is shown as text.
    ui.result.textContent = envelope === null ? text : JSON.stringify(envelope, null, 2);
    if (reply.status === 401 && state.config.api_keys) {
      askForKey("The connector refused the key. Enter a valid API key.");
    }
    takeToken(envelope);
    if (state.accessToken) {
      offerToken();
    }
    return envelope;
  }

  // -- copy as curl -----------------------------------------------------------------------

  // One shell word, in single quotes.
  function shq(text) {
    return "'" + String(text).replace(/'/g, "'\\''") + "'";
  }

  function curlCommand() {
    const call = collect();
    if (!call) {
      return null;
    }
    const url = location.origin + "/blocks/" + encodeURIComponent(ui.block.value);
    const lines = ["curl -sS -X POST " + shq(url)];
    if (state.config.api_keys) {
      // The key is never written out: the shell fills it in from the environment.
      lines.push('-H "X-API-Key: $CONNECTOR_API_KEY"');
    }
    if (call.file) {
      for (const [key, value] of Object.entries(call.args)) {
        lines.push("--form-string " + shq(key + "=" + asText(value)));
      }
      lines.push("-F " + shq(call.file.name + "=@" + call.file.file.name));
    } else {
      lines.push("-H 'Content-Type: application/json'");
      lines.push("--data-raw " + shq(JSON.stringify(call.args)));
    }
    return lines.join(" \\\n  ");
  }

  async function copyCurl() {
    const command = curlCommand();
    if (command === null) {
      return;
    }
    ui.curl.textContent = command;
    ui.curlSection.hidden = false;
    let said = "Select the command to copy it.";
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(command);
        said = "Copied to the clipboard.";
      } catch (e) {
        // Clipboard refused (permissions): the command stays on show to select by hand.
      }
    }
    if (state.config.api_keys) {
      said += " The API key is left to $CONNECTOR_API_KEY.";
    }
    ui.curlStatus.textContent = said;
  }

  // -- wiring -----------------------------------------------------------------------------

  ui.block.addEventListener("change", () => {
    drawBlock();
    ui.curlSection.hidden = true;
  });
  ui.form.addEventListener("submit", run);
  ui.form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      ui.form.requestSubmit();
    }
  });
  ui.copyCurl.addEventListener("click", copyCurl);
  ui.useDemo.addEventListener("click", useDemo);
  ui.forgetToken.addEventListener("click", () => {
    state.accessToken = "";
    for (const field of state.fields) {
      if (field.arg.name === "accessToken") {
        field.input.value = "";
      }
    }
    ui.tokenNote.hidden = true;
  });
  ui.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = ui.keyInput.value.trim();
    if (!key) {
      askForKey("Enter a key first.");
      return;
    }
    try {
      sessionStorage.setItem(KEY_STORE, key);
    } catch (e) {
      // No session storage: the key cannot be kept, and will be asked for again.
    }
    ui.keyInput.value = "";
    ui.keyStatus.textContent = "A key is set for this tab.";
    if (!state.blocks.size) {
      loadManifest();
    }
  });
  ui.forgetKey.addEventListener("click", () => {
    try {
      sessionStorage.removeItem(KEY_STORE);
    } catch (e) {
      // Nothing kept, nothing to forget.
    }
    askForKey("The key is forgotten.");
  });

  // -- the connector's own routes (hooks, subscriptions) -----------------------------------

  // One call with the page's API key: its JSON answer (null when it has no body), or an Error
  // that says the HTTP status and the error envelope's code and message. A refused key asks
  // for another, as a block's call does.
  async function apiCall(method, path, body) {
    const init = { method: method, headers: headers() };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const reply = await fetch(path, init);
    const text = await reply.text();
    let answer = null;
    try {
      answer = text ? JSON.parse(text) : null;
    } catch (e) {
      answer = null; // not JSON (a proxy's page): the status says enough
    }
    if (!reply.ok) {
      if (reply.status === 401 && state.config.api_keys) {
        askForKey("The connector refused the key. Enter a valid API key.");
      }
      const writes = answer && typeof answer.contextWrites === "object" ? answer.contextWrites : null;
      const error = (writes && Object.values(writes)[0]) || {};
      throw new Error("HTTP " + reply.status + " " + (error.status_code || "") + ": " +
        (error.status_msg || ""));
    }
    return answer;
  }

  // -- hooks: a block call a webhook sender reaches ----------------------------------------

  const hookUi = {
    form: $("hook-form"),
    map: $("hook-map"),
    scheme: $("hook-scheme"),
    respond: $("hook-respond"),
    status: $("hook-status"),
    made: $("hook-made"),
    url: $("hook-url"),
    secret: $("hook-secret"),
    sampleForm: $("hook-sample-form"),
    sample: $("hook-sample"),
    args: $("hook-args"),
  };
  let hookId = "";

  function parsedObject(text, what) {
    try {
      const value = JSON.parse(text);
      if (value && typeof value === "object" && !Array.isArray(value)) {
        return value;
      }
    } catch (e) {
      // said below
    }
    hookUi.status.textContent = what + " must be a JSON object.";
    return null;
  }

  function hookCall(path, body) {
    return apiCall("POST", path, body);
  }

  async function makeHook(event) {
    event.preventDefault();
    const map = parsedObject(hookUi.map.value, "Map");
    const call = collect();
    if (!map || !call || !ui.block.value) {
      return;
    }
    const spec = {
      block: ui.block.value,
      args: Object.fromEntries(Object.entries(call.args).filter(([name]) => !(name in map))),
      map: map,
      verify: { scheme: hookUi.scheme.value },
      respond: hookUi.respond.value,
    };
    hookUi.status.textContent = "Making a hook for " + spec.block + "…";
    try {
      const made = await hookCall("/hooks", spec);
      hookId = made.id;
      hookUi.url.textContent = location.origin + made.url;
      hookUi.secret.textContent = made.secret;
      hookUi.made.hidden = false;
      hookUi.sampleForm.hidden = false;
      hookUi.status.textContent = "Hook " + made.id + " made. Give its URL and secret to the sender.";
    } catch (e) {
      hookUi.status.textContent = "No hook made: " + e.message;
    }
  }

  async function trySample(event) {
    event.preventDefault();
    const body = parsedObject(hookUi.sample.value, "The sample payload");
    if (!body || !hookId) {
      return;
    }
    try {
      const shown = await hookCall("/hooks/" + encodeURIComponent(hookId) + "/test", { body: body });
      hookUi.args.textContent = JSON.stringify(shown.args, null, 2);
      hookUi.args.hidden = false;
      hookUi.status.textContent = "Mapped " + shown.mapped.join(", ") + "; nothing was sent.";
    } catch (e) {
      hookUi.args.hidden = true;
      hookUi.status.textContent = "The sample does not map: " + e.message;
    }
  }

  // The choices come from /playground/config.json (the hooks' own tables), once it is read.
  function drawHookChoices() {
    const facts = state.config.hooks || { schemes: [], respond: [] };
    for (const [select, names] of [[hookUi.scheme, facts.schemes], [hookUi.respond, facts.respond]]) {
      select.replaceChildren(...names.map((name) => el("option", { value: name, textContent: name })));
    }
  }

  hookUi.form.addEventListener("submit", makeHook);
  hookUi.sampleForm.addEventListener("submit", trySample);

  // -- subscriptions: the flows new messages are pushed to, and their deliveries ----------

  const subUi = {
    refresh: $("subs-refresh"),
    status: $("subs-status"),
    table: $("subs-table"),
    list: $("subs-list"),
    deliveries: $("deliveries-section"),
    of: $("deliveries-of"),
    log: $("deliveries-list"),
    empty: $("deliveries-empty"),
  };
  let chosen = ""; // the subscription whose deliveries are on show

  const subPath = (...parts) => "/subscriptions/" + parts.map(encodeURIComponent).join("/");

  // The API's times are seconds since the epoch; shown in UTC, to the second.
  function when(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) {
      return "—";
    }
    return new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function filterText(filter) {
    const given = filter && typeof filter === "object" ? filter : {};
    const words = ["tenant " + given.tenantId, "client " + given.clientId];
    if (typeof given.topic === "string") {
      words.push("topic " + given.topic);
    }
    return words.join(", ");
  }

  function subscriptionState(sub) {
    const off = sub.disabled;
    if (off && typeof off === "object") {
      return "disabled since " + when(off.at) + ": " + (off.reason || "no reason given");
    }
    if (off) {
      return "disabled";
    }
    return sub.failing_since ? "active, failing since " + when(sub.failing_since) : "active";
  }

  function cell(text, className) {
    return el("td", { textContent: String(text), className: className || "" });
  }

  // A row's button: its text is short, its accessible name says which row it acts on.
  function rowButton(text, name, action) {
    const button = el("button", { type: "button", textContent: text });
    button.setAttribute("aria-label", name);
    button.addEventListener("click", action);
    return button;
  }

  function subscriptionRow(sub) {
    const remove = rowButton("Remove", "Remove " + sub.id, () => removeSubscription(sub, remove));
    const row = el("tr", {}, [
      cell(sub.id, "mono ident"),
      cell(sub.event),
      cell(filterText(sub.filter), "wrap"),
      cell(sub.target_url, "mono wrap"),
      cell(when(sub.created)),
      cell(subscriptionState(sub)),
      el("td", { className: "row-actions" }, [
        rowButton("Deliveries", "Deliveries of " + sub.id, () => openDeliveries(sub.id)),
        remove,
      ]),
    ]);
    row.dataset.subscription = sub.id;
    if (sub.disabled) {
      row.className = "disabled";
    }
    return row;
  }

  function lastAnswer(last) {
    if (!last || typeof last !== "object") {
      return "—";
    }
    const code = typeof last.status === "number" ? String(last.status) : "";
    const note = typeof last.note === "string" && last.note !== "HTTP " + code ? last.note : "";
    return [code, note].filter(Boolean).join(" · ") || "—";
  }

  function deliveryRow(ident, delivery) {
    const last = delivery.last && typeof delivery.last === "object" ? delivery.last : {};
    const row = el("tr", {}, [
      cell(delivery.message, "mono"),
      cell(delivery.state),
      cell(delivery.attempts),
      cell(lastAnswer(delivery.last)),
      cell(when(last.at)),
      cell(when(delivery.due)),
      el("td", { className: "row-actions" }, [
        rowButton("Redeliver", "Redeliver message " + delivery.message, () =>
          redeliver(ident, delivery)),
      ]),
    ]);
    row.dataset.delivery = delivery.id;
    row.title = "webhook-id " + delivery.id;
    return row;
  }

  function markChosen() {
    for (const row of subUi.list.children) {
      if (row.dataset.subscription === chosen) {
        row.setAttribute("aria-current", "true");
      } else {
        row.removeAttribute("aria-current");
      }
    }
  }

  function closeDeliveries() {
    chosen = "";
    subUi.deliveries.hidden = true;
    subUi.log.replaceChildren();
    markChosen();
  }

  async function loadSubscriptions() {
    subUi.status.textContent = "Listing the subscriptions…";
    let subs;
    try {
      subs = await apiCall("GET", "/subscriptions");
    } catch (e) {
      subUi.status.textContent = "The subscriptions could not be listed: " + e.message;
      return;
    }
    subs = Array.isArray(subs) ? subs.filter((sub) => sub && typeof sub.id === "string") : [];
    subUi.list.replaceChildren(...subs.map(subscriptionRow));
    subUi.table.hidden = subs.length === 0;
    subUi.status.textContent = subs.length === 0
      ? "No subscription yet: a flow's instant trigger makes one (POST /subscriptions)."
      : subs.length + (subs.length === 1 ? " subscription." : " subscriptions.");
    if (subs.some((sub) => sub.id === chosen)) {
      markChosen();
      await loadDeliveries(chosen);
    } else {
      closeDeliveries();
    }
  }

  // Draws the log of ``ident``; false (and says why) when it could not be read.
  async function loadDeliveries(ident) {
    let log;
    try {
      log = await apiCall("GET", subPath(ident, "deliveries"));
    } catch (e) {
      subUi.status.textContent = "The deliveries could not be read: " + e.message;
      return false;
    }
    log = Array.isArray(log) ? log.filter((d) => d && typeof d.id === "string") : [];
    subUi.of.textContent = ident;
    subUi.log.replaceChildren(...log.map((delivery) => deliveryRow(ident, delivery)));
    subUi.empty.hidden = log.length > 0;
    subUi.deliveries.hidden = false;
    return true;
  }

  async function openDeliveries(ident) {
    chosen = ident;
    markChosen();
    if (await loadDeliveries(ident)) {
      subUi.status.textContent = "Deliveries of " + ident + ", newest first.";
    }
  }

  async function redeliver(ident, delivery) {
    try {
      await apiCall("POST", subPath(ident, "deliveries", delivery.id, "redeliver"));
    } catch (e) {
      subUi.status.textContent = "Not redelivered: " + e.message;
      return;
    }
    if (await loadDeliveries(ident)) {
      subUi.status.textContent = "Message " + delivery.message + " is due again: the watcher " +
        "sends it in its next round.";
    }
  }

  // Removing stops a flow's trigger for good, so it takes a second click on the same button.
  async function removeSubscription(sub, button) {
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      button.textContent = "Remove for good";
      button.setAttribute("aria-label", "Remove " + sub.id + " for good");
      subUi.status.textContent = "Removing " + sub.id + " stops its deliveries: click again to " +
        "confirm.";
      return;
    }
    try {
      await apiCall("DELETE", subPath(sub.id));
    } catch (e) {
      subUi.status.textContent = "Not removed: " + e.message;
      return;
    }
    await loadSubscriptions();
    subUi.status.textContent = "Subscription " + sub.id + " removed.";
  }

  subUi.refresh.addEventListener("click", loadSubscriptions);
  ui.keyForm.addEventListener("submit", () => {
    if (apiKey()) {
      loadSubscriptions();
    }
  });

  start()
    .then(drawHookChoices)
    .then(() => {
      // Without a key where one is needed, the list waits for it (the key form loads it).
      if (!state.config.api_keys || apiKey()) {
        return loadSubscriptions();
      }
      return undefined;
    });
})();
