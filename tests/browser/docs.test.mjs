// Opens /docs in Debian's Chromium and uses Swagger UI the way a person would: Authorize with the OAuth2
// password flow (username and password, the token comes from /token) and with the API key, then "Try it out" on
// POST /tasks and GET /tasks, and read the answers off the page.
//
//   node tests/browser/docs.test.mjs BASE_URL USERNAME PASSWORD API_KEY
//
// The user must exist. Exit status 0 when every step shows what it should; a screenshot is kept on failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, username, password, apiKey] = process.argv.slice(2);
if (!base || !username || !password || !apiKey) {
  console.error('usage: node docs.test.mjs BASE_URL USERNAME PASSWORD API_KEY');
  process.exit(2);
}

const STEP_TIMEOUT = 30_000;
const profile = mkdtempSync(join(tmpdir(), 'tasky-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(STEP_TIMEOUT);
const problems = [];
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
page.on('console', (message) => {
  if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
});
// Nothing may leave the machine: the page must work from the binary's own assets.
await page.route('**/*', (route) =>
  new URL(route.request().url()).origin === new URL(base).origin ? route.continue() : route.abort(),
);

function step(text) {
  console.log(`- ${text}`);
}

/** Expands an operation, presses Try it out and Execute, and returns its live response's status and body. */
async function tryItOut(operationId) {
  const operation = page.locator(`#operations-tasks-${operationId}`);
  await operation.locator('.opblock-summary').click();
  await operation.locator('button', { hasText: 'Try it out' }).click();
  await operation.locator('button', { hasText: 'Execute' }).click();
  const live = operation.locator('.live-responses-table .response').first();
  await live.waitFor();
  const status = (await live.locator('.response-col_status').innerText()).trim();
  const body = await live.locator('.response-col_description .microlight').first().innerText();
  return { status, body };
}

let failed = false;
try {
  step(`open ${base}/docs`);
  await page.goto(`${base}/docs`);
  await page.locator('.swagger-ui .info .title').filter({ hasText: 'Tasky' }).waitFor();

  step('Authorize: both schemes are offered');
  await page.locator('.auth-wrapper button.authorize').click();
  const dialog = page.locator('.dialog-ux .modal-ux');
  await dialog.waitFor();
  const oauth = dialog.locator('.auth-container').filter({ hasText: 'OAuth2PasswordBearer' });
  const key = dialog.locator('.auth-container').filter({ hasText: 'APIKeyHeader' });
  await oauth.waitFor();
  await key.waitFor();

  step('OAuth2 password flow: username and password, token from /token');
  await oauth.locator('#oauth_username').fill(username);
  await oauth.locator('#oauth_password').fill(password);
  // Swagger UI labels its buttons for screen readers ("Apply given OAuth2 credentials"), so find them by text.
  await oauth.locator('button', { hasText: 'Authorize' }).click();
  await oauth.locator('button', { hasText: 'Logout' }).waitFor();

  step('API key');
  await key.locator('input').fill(apiKey);
  await key.locator('button', { hasText: 'Authorize' }).click();
  await key.locator('button', { hasText: 'Logout' }).waitFor();
  await dialog.locator('button', { hasText: 'Close' }).first().click();

  step('Try it out: POST /tasks with the example body');
  const created = await tryItOut('create_task');
  if (created.status !== '201') throw new Error(`POST /tasks showed ${created.status}: ${created.body}`);
  const task = JSON.parse(created.body);
  console.log(`  201, task ${task.id} "${task.title}"`);

  step('Try it out: GET /tasks');
  const listed = await tryItOut('list_tasks');
  if (listed.status !== '200') throw new Error(`GET /tasks showed ${listed.status}: ${listed.body}`);
  const tasks = JSON.parse(listed.body);
  if (!tasks.some((t) => t.id === task.id && t.title === task.title)) {
    throw new Error(`GET /tasks does not list task ${task.id}: ${listed.body}`);
  }
  console.log(`  200, ${tasks.length} task(s), including ${task.id}`);

  if (problems.length) throw new Error(`the page reported errors:\n  ${problems.join('\n  ')}`);
  console.log('browser test: /docs works');
} catch (error) {
  failed = true;
  const shot = join(tmpdir(), `tasky-docs-failure-${Date.now()}.png`);
  await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
  console.error(`browser test FAILED: ${error.message}\n  screenshot: ${shot}`);
  if (problems.length) console.error(`  page errors:\n  ${problems.join('\n  ')}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
