// A real browser for the dashboard tests: Debian's chromium driven by playwright-core (never a
// downloaded one), a context per person (its own cookies), and what a page must never do — a dialog,
// a script error, a CSP violation, a console error — recorded so a test can assert there was none.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const RESULTS = new URL('../../test-results/dashboard/', import.meta.url).pathname;

export function browserAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
}

export interface Problems {
  /** Console messages of type error (a CSP refusal is one). */
  consoleErrors: string[];
  /** Uncaught exceptions in the page. */
  pageErrors: string[];
  /** alert(), confirm(), prompt() opened: an injected script ran, or the page asked natively. */
  dialogs: string[];
  /** securitypolicyviolation events seen in the page. */
  cspViolations: string[];
}

export interface Person {
  context: BrowserContext;
  page: Page;
  problems: Problems;
  /** Saves a screenshot of the page as test-results/dashboard/NN-name.png; returns its path. */
  shot(name: string): Promise<string>;
}

let shots = 0;
export const screenshots: string[] = [];

/** A browser context of its own (cookies, storage) with one page, watched for problems. */
export async function person(browser: Browser, baseUrl: string, label: string): Promise<Person> {
  const context = await browser.newContext({ baseURL: baseUrl, viewport: { width: 1440, height: 900 }, acceptDownloads: false });
  const page = await context.newPage();
  const problems: Problems = { consoleErrors: [], pageErrors: [], dialogs: [], cspViolations: [] };
  page.on('console', (message) => {
    if (message.type() === 'error') problems.consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => problems.pageErrors.push(error.message));
  page.on('dialog', (dialog) => {
    problems.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  // Installed through the DevTools protocol, before any page script and outside the page's CSP.
  await context.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { omwatchCsp: string[] }).omwatchCsp = seen;
    document.addEventListener('securitypolicyviolation', (event) => seen.push(`${event.violatedDirective} ${event.blockedURI}`));
  });
  mkdirSync(RESULTS, { recursive: true });
  return {
    context, page, problems,
    async shot(name) {
      const file = join(RESULTS, `${String(++shots).padStart(2, '0')}-${label}-${name}.png`);
      await page.screenshot({ path: file });
      screenshots.push(file);
      return file;
    },
  };
}

/** The CSP violations the page saw (read from the page: they are not console messages in every version). */
export async function cspViolations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { omwatchCsp?: string[] }).omwatchCsp ?? []);
}

/** Logs in through the login form, typing the token as a person pastes it. */
export async function logIn(page: Page, token: string): Promise<void> {
  await page.goto('/');
  await page.waitForSelector('[data-testid="login-form"]');
  await page.fill('input[name="token"]', token);
  await page.click('[data-testid="login-form"] button[type="submit"]');
  await page.waitForSelector('[data-testid="who"]');
}

/** What the live xterm.js view shows, row by row (its DOM renderer's rows). */
export async function terminalText(page: Page): Promise<string> {
  return page.evaluate(() => [...document.querySelectorAll('[data-testid="live-terminal"] .xterm-rows > div')].map((row) => row.textContent ?? '').join('\n'));
}
