// The login page: a token pasted once becomes an HttpOnly session cookie; the token itself is
// not kept by the page.
import { login } from '../api.ts';
import { h } from '../dom.ts';
import type { Me } from '../types.ts';
import { errorBox } from '../ui.ts';

export function loginPage(done: (me: Me) => void): HTMLElement {
  const token = h('input', {
    attrs: { name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', placeholder: 'omwt_…', required: true, 'aria-label': 'token', autofocus: true },
  });
  const message = h('div', { attrs: { role: 'status' } });
  const submit = h('button', { class: 'strong', attrs: { type: 'submit' } }, 'Log in');
  const form = h('form', { class: 'login', attrs: { 'data-testid': 'login-form' } },
    h('h1', null, 'omwatch'),
    h('p', { class: 'muted' }, 'SOC console for remote O&M sessions. Paste your token (omwatch-collector token create).'),
    h('label', null, 'Token', token), submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit.disabled = true;
    message.replaceChildren();
    login(token.value.trim()).then((me) => {
      token.value = '';
      done(me);
    }, (error: unknown) => {
      message.replaceChildren(errorBox(error));
      submit.disabled = false;
      token.select();
    });
  });
  queueMicrotask(() => token.focus());
  return h('main', { class: 'login-page' }, form);
}
