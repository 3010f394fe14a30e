/*
 * Prefect webhook: signed POST of a change_request transition to the prefect-servicenow receiver.
 *
 * Business Rule: Table change_request, When after, Update (Insert optional), Advanced,
 * Condition: current.approval.changesTo('approved')
 *
 * System properties:
 *   x_prefect.webhook.url         receiver URL, e.g. https://prefect.example.com/servicenow/webhook
 *   x_prefect.webhook.secret      shared HMAC secret (type password2)
 *   x_prefect.webhook.timeout_ms  optional, HTTP timeout in ms (default 10000)
 *   x_prefect.webhook.mid_server  optional, MID server name when the receiver is not reachable directly
 *
 * Signature: X-SN-Webhook-Signature: v1=base64(HMAC-SHA256(utf8(secret), timestamp + '.' + body)).
 * Written in ES5 so that it runs in the global scope (Rhino) and in scoped applications alike.
 * See deployments/servicenow/README.md and servicenow_blocks/signing.py.
 */
(function executeRule(current, previous /*null when async*/) {
    var RULE_NAME = 'Prefect webhook: change approved'; // keep equal to the Business Rule's Name
    var PREFIX = 'x_prefect.webhook.';
    var SKIP_TYPES = {journal: true, journal_input: true, journal_list: true, password: true, password2: true};

    var url = String(gs.getProperty(PREFIX + 'url', '') || '');
    var secret = String(gs.getProperty(PREFIX + 'secret', '') || '');
    var timeout = parseInt(gs.getProperty(PREFIX + 'timeout_ms', '10000'), 10);
    if (isNaN(timeout) || timeout <= 0) {
        timeout = 10000;
    }
    var midServer = String(gs.getProperty(PREFIX + 'mid_server', '') || '');
    var number = String(current.getValue('number') || '');

    function redact(text) {
        // never let the secret (or its base64 form) reach a log line
        var out = String(text);
        if (secret) {
            out = out.split(secret).join('***');
            out = out.split(String(gs.base64Encode(secret))).join('***');
        }
        return out;
    }

    function endpointForLog(u) {
        return u.split('?')[0].split('#')[0];
    }

    if (!url || !secret) {
        gs.error('Prefect webhook: system property ' + PREFIX + (url ? 'secret' : 'url') +
            ' is not set; no webhook sent for ' + number);
        return;
    }

    try {
        var operation = String(current.operation());
        var changed = {};
        var elements = current.getElements();
        var count = (typeof elements.size === 'function') ? elements.size() : elements.length;
        for (var i = 0; i < count; i++) {
            var el = (typeof elements.get === 'function') ? elements.get(i) : elements[i];
            var name = String(el.getName());
            var type = String(el.getED().getInternalType());
            if (SKIP_TYPES[type]) {
                continue;
            }
            var value = current.getValue(name);
            value = (value === null || value === undefined) ? '' : String(value);
            if (operation === 'insert' ? value !== '' : el.changes()) {
                changed[name] = value;
            }
        }

        var payload = {
            table: String(current.getTableName()),
            sys_id: String(current.getUniqueValue()),
            number: number,
            operation: operation,
            sys_updated_on: String(current.getValue('sys_updated_on') || ''),
            sys_mod_count: String(current.getValue('sys_mod_count') || '0'),
            changed: changed,
            rule: RULE_NAME
        };
        var body = JSON.stringify(payload);
        var timestamp = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));
        // CertificateEncryption (scoped API); GlideCertificateEncryption is its global-scope twin
        var mac = (typeof CertificateEncryption !== 'undefined') ?
            new CertificateEncryption() : new GlideCertificateEncryption();
        var signature = mac.generateMac(gs.base64Encode(secret), 'HmacSHA256', timestamp + '.' + body);
        if (!signature) { // generateMac returns null on bad input: never send an unsigned request
            gs.error('Prefect webhook: could not sign the webhook for ' + number + '; nothing sent');
            return;
        }
        var deliveryId = String(gs.generateGUID());

        var r = new sn_ws.RESTMessageV2();
        r.setEndpoint(url);
        r.setHttpMethod('post');
        r.setRequestHeader('Content-Type', 'application/json');
        r.setRequestHeader('Accept', 'application/json');
        r.setRequestHeader('User-Agent', 'ServiceNow/1.0');
        r.setRequestHeader('X-SN-Webhook-Id', deliveryId);
        r.setRequestHeader('X-SN-Webhook-Timestamp', timestamp);
        r.setRequestHeader('X-SN-Webhook-Signature', 'v1=' + signature);
        r.setRequestBody(body);
        r.setHttpTimeout(timeout);
        if (midServer) {
            r.setMIDServer(midServer);
        }
        r.executeAsync(); // non-blocking (ECC queue); see System Logs > Outbound HTTP Requests
    } catch (e) {
        gs.error('Prefect webhook: sending ' + number + ' to ' + endpointForLog(url) + ' failed: ' +
            redact(e && e.message ? e.message : e));
    }
})(current, previous);
