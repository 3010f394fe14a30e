#!/usr/bin/env node
'use strict';
/*
 * Run the real Business Rule script (deployments/servicenow/prefect_webhook_business_rule.js), unmodified,
 * against the ServiceNow shims, wait for its outbound HTTP request and print one JSON line.
 *
 *   node tests/js/run_business_rule.js input.json      (or "-" / no argument: read the JSON from stdin)
 *
 * input:  {"properties": {"x_prefect.webhook.url": "...", "x_prefect.webhook.secret": "...", ...},
 *          "record": {"table": "change_request", "operation": "update",
 *                     "fields": {"approval": {"value": "approved", "previous": "requested", "type": "string"}}},
 *          "condition": "current.approval.changesTo('approved')",   (optional: the BR condition field)
 *          "now_ms": 1732800000000,                                   (optional: fixed clock)
 *          "ca_file": "/path/ca.pem",                                 (optional: trusted CA for https)
 *          "script": "/path/other.js"}                                (optional: another script file)
 * output: {"status": <int|null>, "body": <str|null>, "request": {"method", "url", "headers", "body"} | null,
 *          "requests": <int>, "ran": <bool>, "logs": [{"level", "message"}],
 *          "error": <uncaught script error|null>, "http_error": <transport error|null>}
 * exit:   0 when the script ran (or its condition was false), 1 when it threw, 2 on a bad input.
 */
const fs = require('fs');
const path = require('path');
const {createServiceNow} = require('./servicenow_shim.js');

const DEFAULT_SCRIPT = path.resolve(__dirname, '..', '..', 'deployments', 'servicenow',
    'prefect_webhook_business_rule.js');

function readInput(arg) {
    const text = !arg || arg === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(arg, 'utf8');
    const input = JSON.parse(text);
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
        throw new Error('input must be a JSON object with "properties" and "record"');
    }
    if (!input.record || typeof input.record !== 'object') {
        throw new Error('input.record is required: {table, operation, fields}');
    }
    return input;
}

async function main() {
    let input;
    try {
        input = readInput(process.argv[2]);
    } catch (e) {
        process.stderr.write('run_business_rule: bad input: ' + (e.message || e) + '\n');
        return 2;
    }
    const sn = createServiceNow({
        properties: input.properties || {},
        record: input.record,
        now_ms: input.now_ms,
        ca_file: input.ca_file,
    });
    let ran = false;
    let error = null;
    try {
        if (input.condition === undefined || input.condition === null || input.condition === '' ||
            sn.evaluate(String(input.condition))) {
            ran = true;
            sn.runFile(input.script ? path.resolve(String(input.script)) : DEFAULT_SCRIPT);
        }
    } catch (e) {
        error = String(e && e.stack ? e.stack : e);
    }
    await sn.settle();
    const last = sn.requests.length ? sn.requests[sn.requests.length - 1] : null;
    const response = last ? last.response || null : null;
    const out = {
        status: response ? response.status : null,
        body: response ? response.body : null,
        request: last ? {method: last.method, url: last.url, headers: last.headers, body: last.body} : null,
        requests: sn.requests.length,
        ran: ran,
        logs: sn.logs,
        error: error,
        http_error: response ? response.error : null,
    };
    // one line for any line splitter: U+2028/U+2029 are legal raw in JSON strings, escape them
    process.stdout.write(JSON.stringify(out).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029') + '\n');
    return error ? 1 : 0;
}

main().then((code) => {
    process.exitCode = code;
}, (e) => {
    process.stderr.write('run_business_rule: ' + (e && e.stack ? e.stack : e) + '\n');
    process.exitCode = 2;
});
