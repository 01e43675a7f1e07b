// The hostname settings page: the account's list, edited in place and saved whole (PUT replaces it).
import { api, describe } from './api.js';
import { $, busy, h, say } from './dom.js';

const path = (account) => `accounts/${encodeURIComponent(account)}/access/certificates/settings`;

export function settingsPage(state) {
  const tbody = $('settings-table').querySelector('tbody');
  const error = $('settings-error');

  const row = (s = { hostname: '', china_network: false, client_certificate_forwarding: false }) => {
    const tr = h('tr', {},
      h('td', {}, h('input', { type: 'text', class: 'hostname', value: s.hostname, required: true, 'aria-label': 'Hostname', spellcheck: 'false' })),
      h('td', {}, h('input', { type: 'checkbox', class: 'china', checked: s.china_network, 'aria-label': 'China network' })),
      h('td', {}, h('input', { type: 'checkbox', class: 'forwarding', checked: s.client_certificate_forwarding, 'aria-label': 'Client certificate forwarding' })),
      h('td', {}, h('button', { type: 'button', class: 'secondary', onclick: () => tr.remove() }, 'Remove')),
    );
    return tr;
  };

  const show = (list) => tbody.replaceChildren(...list.map((s) => row(s)));

  const load = async () => {
    say(error, '');
    say($('settings-ok'), '');
    try {
      show((await api('GET', path(state.account))).result);
    } catch (err) {
      tbody.replaceChildren();
      say(error, describe(err));
    }
  };

  $('settings-add').addEventListener('click', () => {
    const tr = row();
    tbody.append(tr);
    tr.querySelector('input')?.focus();
  });

  const form = $('settings-form');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(form, async () => {
      say(error, '');
      say($('settings-ok'), '');
      const settings = [...tbody.querySelectorAll('tr')].map((tr) => ({
        hostname: tr.querySelector('.hostname').value.trim(),
        china_network: tr.querySelector('.china').checked,
        client_certificate_forwarding: tr.querySelector('.forwarding').checked,
      }));
      try {
        const saved = (await api('PUT', path(state.account), { settings })).result;
        show(saved);
        say($('settings-ok'), `Saved (${saved.length} ${saved.length === 1 ? 'hostname' : 'hostnames'}).`);
      } catch (err) {
        say(error, `Not saved: ${describe(err)}`);
      }
    });
  });

  return { load };
}
