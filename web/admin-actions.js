// nerve admin page: the actions (project issue 8) — disconnect a user, end a
// room, publish, a tenant's quotas and usage. Each goes to
// /api/admin/tenants/{tenant}/... with the API key; the server writes an
// admin.* audit event before taking it (docs/api.md, "Admin API"). Apart from
// admin.js, which polls the cluster and draws it, and which calls `setup`.
// Sets `window.NerveAdminActions`.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  /**
   * Fill in the quota fields and wire the action forms.
   * @param {object} deps
   * @param {(tag: string, attrs?: object, ...children: any[]) => HTMLElement} deps.el builds an element
   * @param {Intl.NumberFormat} deps.fmt the page's number format
   * @param {() => string} deps.key the API key the page is logged in with
   */
  function setup({ el, fmt, key }) {
    const QUOTA_FIELDS = [
      ['connections', 'connections'],
      ['publishesPerSecond', 'publishes / s'],
      ['signalsPerSecond', 'signals / s'],
      ['rooms', 'rooms'],
      ['storedBytes', 'stored bytes'],
    ];
    $('quota-fields').replaceChildren(
      ...QUOTA_FIELDS.map(([name, label]) =>
        el(
          'label',
          {},
          label,
          el('input', { id: `quota-${name}`, type: 'number', min: '0', step: '1', placeholder: 'no limit', 'data-testid': `quota-${name}` }),
        ),
      ),
    );

    const tenantPath = () => `/api/admin/tenants/${encodeURIComponent($('act-tenant').value.trim())}`;

    function showResult(ok, text) {
      const result = $('action-result');
      result.dataset.ok = String(ok);
      result.textContent = `${new Date().toLocaleTimeString()} — ${text}`;
    }

    /** One admin API call; resolves with the parsed body, or undefined after showing the refusal. */
    async function act(method, path, body) {
      try {
        const response = await fetch(path, {
          method,
          headers: { authorization: `Bearer ${key()}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          cache: 'no-store',
        });
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) {
          showResult(false, `refused: ${response.status} ${answer.code ?? ''} ${answer.message ?? ''}`.trim());
          return undefined;
        }
        return answer;
      } catch (error) {
        showResult(false, `unreachable: ${error.message}`);
        return undefined;
      }
    }

    const optional = (id) => {
      const value = $(id).value.trim();
      return value === '' ? undefined : value;
    };

    $('form-disconnect').addEventListener('submit', async (event) => {
      event.preventDefault();
      const user = $('act-user').value.trim();
      const body = { conn: optional('act-conn'), reason: optional('act-disconnect-reason') };
      const answer = await act('POST', `${tenantPath()}/users/${encodeURIComponent(user)}/disconnect`, body);
      if (answer)
        showResult(
          true,
          `disconnect ${answer.conn ? `connection ${answer.conn} of ` : ''}${answer.user}: sent to ${answer.nodes} node(s) holding a connection`,
        );
    });

    $('form-end').addEventListener('submit', async (event) => {
      event.preventDefault();
      const room = $('act-end-room').value.trim();
      const answer = await act('POST', `${tenantPath()}/rooms/${encodeURIComponent(room)}/end`, { reason: optional('act-end-reason') });
      if (answer) showResult(true, `room ${answer.room} ended: ${answer.nodes} node(s) had members`);
    });

    $('form-publish').addEventListener('submit', async (event) => {
      event.preventDefault();
      let data;
      try {
        data = JSON.parse($('act-pub-data').value);
      } catch {
        showResult(false, 'data is not valid JSON');
        return;
      }
      const room = $('act-pub-room').value.trim();
      const answer = await act('POST', `${tenantPath()}/rooms/${encodeURIComponent(room)}/messages`, {
        data,
        class: $('act-pub-class').value,
        from: optional('act-pub-from'),
      });
      if (answer) showResult(true, `published into ${answer.room}: id ${answer.id}${answer.offset === undefined ? '' : `, offset ${answer.offset}`}`);
    });

    async function loadQuotas() {
      const answer = await act('GET', `${tenantPath()}/quotas`);
      if (!answer) return;
      for (const [name] of QUOTA_FIELDS) $(`quota-${name}`).value = answer.quota[name] ?? '';
      $('quota-source').textContent = `(${answer.source})`;
      showResult(true, `quotas of ${answer.tenant} loaded (${answer.source})`);
    }
    $('act-quotas-load').addEventListener('click', () => void loadQuotas());

    $('form-quotas').addEventListener('submit', async (event) => {
      event.preventDefault();
      const quota = {};
      for (const [name] of QUOTA_FIELDS) {
        const value = $(`quota-${name}`).value.trim();
        if (value !== '') quota[name] = Number(value);
      }
      const answer = await act('PUT', `${tenantPath()}/quotas`, quota);
      if (answer) {
        $('quota-source').textContent = `(${answer.source})`;
        showResult(true, `quotas of ${answer.tenant} saved; every node applies them within ${answer.refreshMs} ms`);
      }
    });

    async function loadUsage() {
      const answer = await act('GET', `${tenantPath()}/usage`);
      if (!answer) return;
      const live = answer.live;
      const rows = [
        ['connections now', live.connections, 'usage-connections'],
        ['connection-minutes', fmt.format(live.connectionMs / 60000), 'usage-connection-minutes'],
        ['messages', live.messages, 'usage-messages'],
        ['deliveries', live.deliveries, 'usage-deliveries'],
        ['signals', live.signals, 'usage-signals'],
        ['stored bytes', live.storedBytes, 'usage-stored-bytes'],
      ];
      $('usage-rows').replaceChildren(...rows.map(([label, value, id]) => el('tr', {}, el('td', {}, label), el('td', { 'data-testid': id }, String(value)))));
      const hour = answer.lastHour
        ? `Last hour, all nodes (metered): ${fmt.format(answer.lastHour.connectionMinutes)} connection-minutes, ${answer.lastHour.messages} messages, ${answer.lastHour.deliveries} deliveries.`
        : `Last hour: ${answer.lastHourError}.`;
      const summed = live.partial
        ? `${live.node} only: other nodes unreadable`
        : `${live.nodes.length} node${live.nodes.length === 1 ? '' : 's'}: ${live.nodes.join(', ')}`;
      $('usage-note').textContent = `Current interval, summed over ${summed}. ${hour}`;
      showResult(true, `usage of ${answer.tenant} loaded`);
    }
    $('act-usage').addEventListener('click', () => void loadUsage());
  }

  window.NerveAdminActions = { setup };
})();
