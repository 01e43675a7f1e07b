// The console's entry point: sign-in, the account, the tabs. Every call goes through the relay's public API.
import { api, describe, onUnauthorized, setToken, token } from './api.js';
import { $, h, say } from './dom.js';
import { certificatesPage } from './certificates.js';
import { jobsPage } from './jobs.js';
import { mappingsPage } from './mappings.js';
import { settingsPage } from './settings.js';

const ACCOUNT_KEY = 'mtls-relay.console.account';
const TABS = ['certificates', 'mappings', 'settings', 'jobs'];

const state = { principal: undefined, account: undefined, certificates: [] };
const pages = {
  certificates: certificatesPage(state),
  mappings: mappingsPage(state),
  settings: settingsPage(state),
  jobs: jobsPage(state),
};

function currentTab() {
  const tab = location.hash.slice(1);
  return TABS.includes(tab) ? tab : 'certificates';
}

function showLogin(message) {
  state.principal = undefined;
  $('app').hidden = true;
  $('who').hidden = true;
  $('link-queues').hidden = true;
  $('login').hidden = false;
  say($('login-error'), message);
  $('login-token').value = '';
  $('login-token').focus();
}

async function showTab() {
  const tab = currentTab();
  for (const t of TABS) {
    // Jobs are looked up by id alone; the other pages are an account's.
    $(`page-${t}`).hidden = t !== tab || (state.account === undefined && t !== 'jobs');
    document.querySelector(`.tabs [data-tab="${t}"]`)?.setAttribute('aria-current', t === tab ? 'page' : 'false');
  }
  if (state.account !== undefined || tab === 'jobs') await pages[tab].load();
}

async function openAccount(account) {
  state.account = account;
  state.certificates = [];
  sessionStorage.setItem(ACCOUNT_KEY, account);
  $('account-input').value = account;
  say($('account-error'), '');
  await showTab();
}

function describePrincipal(p) {
  if (p === undefined) return 'signed in';
  const accounts = p.accounts === '*' ? 'every account' : p.accounts.length === 1 ? `account ${p.accounts[0]}` : `accounts ${p.accounts.join(', ')}`;
  const rights = p.permissions.includes('MTLS_WRITE_INTERNAL') ? (p.permissions.includes('MTLS_READ_INTERNAL') ? 'read and write' : 'write only') : 'read only';
  return `${p.id} · ${accounts} · ${rights}`;
}

async function showApp() {
  $('login').hidden = true;
  $('app').hidden = false;
  $('who').hidden = false;
  const p = state.principal;
  $('who-text').textContent = describePrincipal(p);
  $('link-queues').hidden = p?.administrator !== true;
  const mine = p !== undefined && p.accounts !== '*' ? p.accounts : [];
  $('account-list').replaceChildren(...mine.map((a) => h('option', { value: a })));
  $('account-scope').textContent = p === undefined ? '' : p.accounts === '*' ? 'this token may open any account' : `this token may open: ${mine.join(', ')}`;
  const remembered = sessionStorage.getItem(ACCOUNT_KEY) ?? (mine.length === 1 ? mine[0] : undefined);
  if (remembered === undefined || remembered === '') {
    state.account = undefined;
    await showTab();
    say($('account-error'), 'Open an account to see its certificates, mappings and settings (jobs need none).');
    $('account-input').focus();
    return;
  }
  await openAccount(remembered);
}

/** Who the token is (GET /mtls/whoami); a token without the read permission still signs in, with less to show. */
async function whoami() {
  try {
    state.principal = await api('GET', 'mtls/whoami');
  } catch (err) {
    if (err.status === 403) state.principal = undefined;
    else throw err;
  }
}

onUnauthorized((err) => {
  setToken(null);
  showLogin(describe(err));
});

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void (async () => {
    const typed = $('login-token').value.trim().replace(/^Bearer\s+/i, '');
    if (typed === '') return;
    setToken(typed);
    const account = $('login-account').value.trim();
    if (account !== '') sessionStorage.setItem(ACCOUNT_KEY, account);
    else sessionStorage.removeItem(ACCOUNT_KEY);
    try {
      await whoami();
    } catch (err) {
      setToken(null);
      showLogin(`Not signed in: ${describe(err)}`);
      return;
    }
    await showApp();
  })();
});

$('account-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const account = $('account-input').value.trim();
  if (account !== '') void openAccount(account);
});

$('sign-out').addEventListener('click', () => {
  setToken(null);
  sessionStorage.removeItem(ACCOUNT_KEY);
  showLogin('');
});

window.addEventListener('hashchange', () => void showTab());

// A token already in this tab (a reload): carry on without asking again.
if (token() === null) {
  showLogin('');
} else {
  try {
    await whoami();
    await showApp();
  } catch (err) {
    if (token() !== null) showLogin(describe(err));
  }
}
