'use strict';
/*
 * Faithful-enough shims of the ServiceNow server-side APIs a Business Rule uses, so that the real
 * script in deployments/servicenow/ runs unmodified under Node (built-in modules only).
 *
 *   gs                     getProperty, base64Encode/Decode, generateGUID, nowDateTime, info/warn/error/debug
 *   GlideDateTime          now (or a fixed clock), getNumericValue, getValue
 *   CertificateEncryption  generateMac(base64Key, 'HmacSHA256', data) -> base64, like the Java original
 *   sn_ws.RESTMessageV2    setters, execute() (synchronous) and executeAsync() doing a real HTTP(S) request
 *   current / previous     GlideRecord shims built from {table, operation, fields: {name: {value, previous, type}}}
 *
 * createServiceNow(options) returns {context, logs, requests, settle()}; run code with vm.runInContext.
 */
const crypto = require('crypto');
const vm = require('vm');
const fs = require('fs');

const DEFAULT_USER_AGENT = 'ServiceNow/1.0';
const DEFAULT_HTTP_TIMEOUT_MS = 60000;
const MAC_ALGORITHMS = {
    HmacMD5: 'md5', HmacSHA1: 'sha1', HmacSHA224: 'sha224', HmacSHA256: 'sha256',
    HmacSHA384: 'sha384', HmacSHA512: 'sha512',
};

function pad(n, width) {
    return String(n).padStart(width || 2, '0');
}

function formatDateTime(ms) {
    const d = new Date(ms);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
        pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
}

function parseDateTime(text) {
    const m = /^(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2}))?$/.exec(String(text).trim());
    if (!m) {
        throw new Error('GlideDateTime: cannot parse ' + JSON.stringify(String(text)));
    }
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
}

function decodeBase64Strict(text) {
    // java.util.Base64.getDecoder() (what CertificateEncryption uses) rejects anything off-alphabet
    const s = String(text);
    if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
        throw new Error('java.lang.IllegalArgumentException: Illegal base64 character in key');
    }
    return Buffer.from(s, 'base64');
}

function substitute(message, args) {
    // gs.info('x {0} y {1}', a, b)
    return String(message).replace(/\{(\d)\}/g, (all, i) => (i < args.length ? String(args[i]) : all));
}

/* ---------------------------------------------------------------- HTTP (shared with the sync worker) */

// Self-contained (it is also serialised into a worker thread): performs one request, resolves to a plain
// object and never rejects.
function performRequest(req) {
    const http = require('http');
    const https = require('https');
    const fs = require('fs');
    return new Promise((resolve) => {
        let url;
        try {
            url = new URL(req.url);
        } catch (e) {
            resolve({status: 0, body: '', headers: {}, error: 'Invalid endpoint: ' + req.url});
            return;
        }
        const transport = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : null;
        if (!transport) {
            resolve({status: 0, body: '', headers: {}, error: 'Unsupported protocol: ' + url.protocol});
            return;
        }
        const options = {method: req.method, headers: Object.assign({}, req.headers)};
        if (req.body !== null && req.body !== undefined) {
            options.headers['Content-Length'] = String(Buffer.byteLength(req.body, 'utf8'));
        }
        if (url.protocol === 'https:' && req.caFile) {
            options.ca = fs.readFileSync(req.caFile);
        }
        let done = false;
        const finish = (result) => {
            if (!done) {
                done = true;
                resolve(result);
            }
        };
        const r = transport.request(url, options, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => finish({
                status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'),
                headers: res.headers, error: null,
            }));
            res.on('error', (e) => finish({status: 0, body: '', headers: {}, error: String(e.message || e)}));
        });
        r.setTimeout(req.timeoutMs, () => r.destroy(new Error('Request timed out after ' + req.timeoutMs + ' ms')));
        r.on('error', (e) => finish({status: 0, body: '', headers: {}, error: String(e.message || e)}));
        if (req.body !== null && req.body !== undefined) {
            r.write(req.body, 'utf8');
        }
        r.end();
    });
}

function performRequestSync(req) {
    // RESTMessageV2.execute() blocks: run the request in a worker thread and wait on a shared flag.
    const {Worker, MessageChannel, receiveMessageOnPort} = require('worker_threads');
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const {port1, port2} = new MessageChannel();
    const code = 'const {workerData} = require("worker_threads");\n' +
        'const performRequest = ' + performRequest.toString() + ';\n' +
        'performRequest(workerData.req).then((res) => {\n' +
        '  workerData.port.postMessage(res);\n' +
        '  Atomics.store(workerData.flag, 0, 1); Atomics.notify(workerData.flag, 0);\n' +
        '});\n';
    const worker = new Worker(code, {eval: true, workerData: {req, flag, port: port2}, transferList: [port2]});
    Atomics.wait(flag, 0, 0, req.timeoutMs + 5000);
    const msg = receiveMessageOnPort(port1);
    worker.terminate();
    port1.close();
    return msg ? msg.message : {status: 0, body: '', headers: {}, error: 'Request did not complete'};
}

class RESTResponseV2 {
    constructor(result) {
        this._result = result || null;
    }

    _set(result) {
        this._result = result;
    }

    waitForResponse() {
        // A real instance blocks here; under Node the harness awaits every async request after the script.
    }

    getStatusCode() {
        return this._result ? this._result.status : 0;
    }

    getBody() {
        return this._result ? this._result.body : '';
    }

    getHeader(name) {
        const headers = this._result ? this._result.headers : {};
        const v = headers[String(name).toLowerCase()];
        return v === undefined ? null : String(v);
    }

    getHeaders() {
        return Object.assign({}, this._result ? this._result.headers : {});
    }

    haveError() {
        return !this._result || Boolean(this._result.error) || this._result.status >= 400;
    }

    getErrorMessage() {
        return this._result && this._result.error ? this._result.error : '';
    }

    getErrorCode() {
        return this._result && this._result.error ? 1 : 0;
    }
}

/* ---------------------------------------------------------------- GlideRecord */

function normaliseValue(v) {
    return v === null || v === undefined ? '' : String(v);
}

function makeElement(record, name, desc, side) {
    const value = normaliseValue(side === 'previous' ? desc.previous : desc.value);
    const previous = normaliseValue(desc.previous);
    const type = String(desc.type || 'string');
    const changed = side === 'current' && value !== previous;
    const ed = {
        getInternalType: () => type,
        getName: () => name,
        getLabel: () => String(desc.label || name),
        isMandatory: () => Boolean(desc.mandatory),
    };
    return {
        getName: () => name,
        getValue: () => (value === '' ? null : value),
        getDisplayValue: () => normaliseValue(desc.display_value === undefined ? value : desc.display_value),
        getED: () => ed,
        getTableName: () => record.getTableName(),
        getLabel: () => ed.getLabel(),
        changes: () => changed,
        changesTo: (v) => changed && value === String(v),
        changesFrom: (v) => changed && previous === String(v),
        nil: () => value === '',
        toString: () => value,
    };
}

/*
 * description: {table, operation: 'insert'|'update'|'delete', elements_style?: 'array'|'java',
 *               fields: {name: {value, previous?, type?, display_value?}}}
 * A field without `previous` is unchanged on update and new (previous '') on insert.
 */
function makeGlideRecord(description, side) {
    const table = String(description.table || 'change_request');
    const operation = String(description.operation || 'update');
    const fields = {};
    for (const [name, raw] of Object.entries(description.fields || {})) {
        const desc = (raw !== null && typeof raw === 'object') ? Object.assign({}, raw) : {value: raw};
        if (!('previous' in desc)) {
            desc.previous = operation === 'insert' ? '' : desc.value;
        }
        fields[name] = desc;
    }
    const record = {
        getTableName: () => table,
        getRecordClassName: () => table,
        operation: () => operation,
        isNewRecord: () => side === 'current' && operation === 'insert',
        isValidRecord: () => true,
        isValidField: (name) => Object.prototype.hasOwnProperty.call(fields, name),
        getUniqueValue: () => normaliseValue(fields.sys_id ? (side === 'previous' ? fields.sys_id.previous : fields.sys_id.value) : ''),
        getValue: (name) => (record.isValidField(name) ? record[name].getValue() : null),
        getDisplayValue: (name) => (name === undefined ? record.getValue('number') : (record.isValidField(name) ? record[name].getDisplayValue() : '')),
        getElement: (name) => (record.isValidField(name) ? record[name] : null),
        getElements: () => {
            const list = Object.keys(fields).map((n) => record[n]);
            if (description.elements_style === 'java') {
                // global scope returns a java.util.ArrayList
                return {size: () => list.length, get: (i) => list[i], isEmpty: () => list.length === 0};
            }
            return list;
        },
        update: () => {
            throw new Error('current.update() in a Business Rule recurses; the shim refuses it');
        },
    };
    for (const [name, desc] of Object.entries(fields)) {
        if (name in record) {
            throw new Error('field name clashes with a GlideRecord method: ' + name);
        }
        record[name] = makeElement(record, name, desc, side);
    }
    return record;
}

/* ---------------------------------------------------------------- the environment */

/*
 * options: {properties: {name: value}, record: <description>, now_ms?: number, ca_file?: string}
 */
function createServiceNow(options) {
    const opts = options || {};
    const properties = Object.assign({}, opts.properties || {});
    const nowMs = () => (opts.now_ms === undefined || opts.now_ms === null ? Date.now() : Number(opts.now_ms));
    const logs = [];
    const requests = [];
    const pending = [];

    const log = (level) => function (message) {
        logs.push({level: level, message: substitute(message, Array.prototype.slice.call(arguments, 1))});
    };

    const gs = {
        getProperty: (name, alt) => {
            if (Object.prototype.hasOwnProperty.call(properties, name) && properties[name] !== null) {
                return String(properties[name]);
            }
            return alt === undefined ? null : alt;
        },
        base64Encode: (s) => Buffer.from(String(s), 'utf8').toString('base64'),
        base64Decode: (s) => Buffer.from(String(s), 'base64').toString('utf8'),
        generateGUID: () => crypto.randomBytes(16).toString('hex'),
        nowDateTime: () => formatDateTime(nowMs()),
        nil: (v) => v === null || v === undefined || String(v) === '',
        info: log('info'),
        warn: log('warn'),
        error: log('error'),
        debug: log('debug'),
        log: log('info'),
        print: log('info'),
    };

    class GlideDateTime {
        constructor(value) {
            this._ms = value === undefined ? nowMs() : parseDateTime(value);
        }

        getNumericValue() {
            return this._ms;
        }

        getValue() {
            return formatDateTime(this._ms);
        }

        getDisplayValue() {
            return formatDateTime(this._ms);
        }

        toString() {
            return formatDateTime(this._ms);
        }
    }

    class CertificateEncryption {
        generateMac(key, algorithm, data) {
            const alg = MAC_ALGORITHMS[String(algorithm)];
            if (!alg) {
                throw new Error('java.security.NoSuchAlgorithmException: Algorithm ' + algorithm + ' not available');
            }
            const keyBytes = decodeBase64Strict(key);
            if (keyBytes.length === 0) {
                throw new Error('java.lang.IllegalArgumentException: Empty key');
            }
            return crypto.createHmac(alg, keyBytes).update(Buffer.from(String(data), 'utf8')).digest('base64');
        }
    }

    class RESTMessageV2 {
        constructor(name, method) {
            if (name !== undefined || method !== undefined) {
                throw new Error('shim: named REST message records are not supported; use new sn_ws.RESTMessageV2()');
            }
            this._endpoint = null;
            this._method = null;
            this._headers = [];
            this._query = [];
            this._body = null;
            this._timeoutMs = DEFAULT_HTTP_TIMEOUT_MS;
            this._midServer = null;
            this._logLevel = 'basic';
        }

        setEndpoint(url) {
            this._endpoint = String(url);
        }

        getEndpoint() {
            return this._endpoint;
        }

        setHttpMethod(method) {
            this._method = String(method).toUpperCase();
        }

        setRequestHeader(name, value) {
            const key = String(name);
            this._headers = this._headers.filter(([n]) => n.toLowerCase() !== key.toLowerCase());
            this._headers.push([key, String(value)]);
        }

        getRequestHeader(name) {
            const hit = this._headers.find(([n]) => n.toLowerCase() === String(name).toLowerCase());
            return hit ? hit[1] : '';
        }

        getRequestHeaders() {
            return Object.fromEntries(this._headers);
        }

        setQueryParameter(name, value) {
            this._query.push([String(name), String(value)]);
        }

        setRequestBody(body) {
            this._body = String(body);
        }

        getRequestBody() {
            return this._body;
        }

        setHttpTimeout(ms) {
            this._timeoutMs = Number(ms);
        }

        setMIDServer(name) {
            this._midServer = String(name);
        }

        setLogLevel(level) {
            this._logLevel = String(level);
        }

        setBasicAuth(user, password) {
            const token = Buffer.from(String(user) + ':' + String(password), 'utf8').toString('base64');
            this.setRequestHeader('Authorization', 'Basic ' + token);
        }

        _request() {
            if (!this._endpoint || !this._method) {
                throw new Error('RESTMessageV2: endpoint and HTTP method must be set before execute');
            }
            const url = new URL(this._endpoint);
            for (const [n, v] of this._query) {
                url.searchParams.append(n, v);
            }
            const headers = {};
            if (!this._headers.some(([n]) => n.toLowerCase() === 'user-agent')) {
                headers['User-Agent'] = DEFAULT_USER_AGENT;
            }
            for (const [n, v] of this._headers) {
                headers[n] = v;
            }
            const req = {
                method: this._method, url: url.toString(), headers: headers, body: this._body,
                timeoutMs: this._timeoutMs, caFile: opts.ca_file || null,
            };
            requests.push({
                method: req.method, url: req.url, headers: Object.assign({}, headers),
                body: req.body === null ? '' : req.body, timeout_ms: req.timeoutMs,
                mid_server: this._midServer, async: false,
            });
            return req;
        }

        execute() {
            const req = this._request();
            const index = requests.length - 1;
            const result = performRequestSync(req);
            requests[index].response = result;
            return new RESTResponseV2(result);
        }

        executeAsync() {
            const req = this._request();
            requests[requests.length - 1].async = true;
            const response = new RESTResponseV2(null);
            const index = requests.length - 1;
            pending.push(performRequest(req).then((result) => {
                response._set(result);
                requests[index].response = result;
            }));
            return response;
        }
    }

    const current = makeGlideRecord(opts.record || {}, 'current');
    const previous = makeGlideRecord(opts.record || {}, 'previous');
    const context = vm.createContext({
        gs: gs,
        GlideDateTime: GlideDateTime,
        CertificateEncryption: CertificateEncryption,
        sn_ws: {RESTMessageV2: RESTMessageV2, RESTResponseV2: RESTResponseV2},
        current: current,
        previous: previous,
    });

    return {
        context: context,
        logs: logs,
        requests: requests,
        runFile: (path) => vm.runInContext(fs.readFileSync(path, 'utf8'), context, {filename: path}),
        evaluate: (expression) => vm.runInContext('(' + expression + '\n)', context, {filename: 'condition'}),
        settle: async () => {
            // requests may be queued while others settle; loop until none is left
            let seen = 0;
            while (seen < pending.length) {
                const batch = pending.slice(seen);
                seen = pending.length;
                await Promise.allSettled(batch);
            }
        },
    };
}

module.exports = {createServiceNow, makeGlideRecord, performRequest, formatDateTime};
