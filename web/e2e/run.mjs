// End-to-end tests of the firm portal and the bureau console in headless Chromium, driven by
// playwright-core. Run by ops/e2e against a server on a fresh database; the flows depend on
// each other and run in order:
//   1. the admin registers a platform in the console and reads its API key, shown once;
//   2. on a phone-sized screen a firm registers, is told to upload its business licence, takes
//      its photo, the reviewer sees it in the console's queue and approves it, and the firm
//      logs in, quotes, claims and sees its QR;
//   2b. a second firm's licence is rejected with a reason, which the portal shows; it uploads
//      again and is pending again; registering its USCC again points to the bureau;
//   3. the platform redeems the voucher through its API; the portal shows the new balance;
//   4. the admin creates a finance colleague, who activates the account with the code and
//      enrols an authenticator from the QR (the test computes TOTP codes from the secret);
//   5. the reviewer closes the month, the new colleague approves (and may not pay), a second
//      finance colleague pays, the console shows it paid;
//   6. logging out ends the session on the server in both pages.
// Prints `ok - name` / `not ok - name` per test and `N passed, M failed`; exits 1 on failure.
// Screenshots (each step, and on failure) go to SCREENSHOT_DIR.

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHmac, randomInt, randomUUID } from 'node:crypto';

const need = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return v;
};

const BASE_URL = need('BASE_URL').replace(/\/$/, '');
const ADMIN = [need('ADMIN_USER'), need('ADMIN_PASS')];
const FINANCE = [need('FINANCE_USER'), need('FINANCE_PASS')];
const REVIEWER = [need('REVIEWER_USER'), need('REVIEWER_PASS')];
const CHROMIUM = need('CHROMIUM');
const SCREENSHOT_DIR = need('SCREENSHOT_DIR');
mkdirSync(SCREENSHOT_DIR, { recursive: true });

const PHONE = { width: 375, height: 812 };
const DESKTOP = { width: 1366, height: 900 };
const WIDE = { width: 1440, height: 900 };

// ---- USCC with both check digits (GB 32100-2015, GB 11714-1997) ----------------------------

const USCC_CHARSET = '0123456789ABCDEFGHJKLMNPQRTUWXY';

function makeUscc(registration = '91440306') {
  let org = '';
  for (let i = 0; i < 8; i++) org += USCC_CHARSET[randomInt(USCC_CHARSET.length)];
  const orgWeights = [3, 7, 9, 10, 5, 8, 4, 2];
  let sum = 0;
  for (let i = 0; i < 8; i++) sum += parseInt(org[i], 36) * orgWeights[i];
  const c9 = 11 - (sum % 11);
  org += c9 === 10 ? 'X' : c9 === 11 ? '0' : String(c9);
  const body = registration + org;
  let total = 0;
  let weight = 1;
  for (let i = 0; i < 17; i++) {
    total += USCC_CHARSET.indexOf(body[i]) * weight;
    weight = (weight * 3) % 31;
  }
  return body + USCC_CHARSET[(31 - (total % 31)) % 31];
}

// The same code with a wrong last character, for the inline check.
function spoil(uscc) {
  const last = uscc[17];
  const other = USCC_CHARSET[(USCC_CHARSET.indexOf(last) + 1) % USCC_CHARSET.length];
  return uscc.slice(0, 17) + other;
}

// A small licence photo (48×32 PNG): what the phone's camera gives the file input.
const LICENCE_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAADAAAAAgCAIAAADbtmxLAAAATElEQVR42mM4IqcyqBDDIHXQr28vBhyNOmjUQaMOGkgH5dELDFkHjaahUQeNOmiIlkOjUTbqoFEHUTeXjUbZqINGHTSoHTQ6+oETAQAbhynHH8nVHgAAAABJRU5ErkJggg==',
  'base64');

// The firm on `page` (home view, pending) uploads its licence photo.
async function uploadLicence(page, shotName) {
  await expectText(page.locator('#verify-status'), '审核中', 'pending status');
  await expectText(page.locator('#verify-why'), '营业执照', 'what to upload and why');
  assert(await page.locator('#claim-card').isHidden(), 'the claim form is hidden before verification');
  const accept = await page.getAttribute('#evidence-file', 'accept');
  assert(accept === 'image/*,application/pdf', `file input accepts "${accept}"`);
  await page.selectOption('#evidence-kind', 'business_license');
  await page.setInputFiles('#evidence-file', { name: 'licence.png', mimeType: 'image/png', buffer: LICENCE_PNG });
  await page.click('#evidence-upload');
  await expectText(page.locator('#evidence-list li'), '营业执照', 'uploaded file listed');
  await noHorizontalOverflow(page);
  if (shotName) await shot(page, shotName);
}

// The reviewer opens `uscc` from the console's verification queue and sees its licence image.
async function openFromQueue(page, uscc) {
  await page.goto(`${BASE_URL}/bureau#/firms`);
  const row = page.locator('tr[data-uscc="' + uscc + '"]').first();
  await row.waitFor({ state: 'visible' });
  await row.locator('a.firm-link').click();
  await page.locator('#evidence-files').waitFor({ state: 'visible' });
  await page.waitForFunction(() => {
    const img = document.querySelector('#evidence-files img');
    return img && img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:');
  });
  await expectText(page.locator('#firm-declared'), uscc, 'declared data beside the files');
}

function shanghaiMonth() {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-GB', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit' })
    .formatToParts(new Date()).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}`;
}

// ---- A tiny runner ---------------------------------------------------------------------------

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const shared = {};
const pages = new Set();
let context;

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

// The page at 375 px and at 1440 px (`name-375.png`, `name-1440.png`), back to its own size after.
async function shots(page, name) {
  const size = page.viewportSize();
  for (const s of [PHONE, WIDE]) {
    await page.setViewportSize(s);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(150);
    await shot(page, `${name}-${s.width}`);
  }
  await page.setViewportSize(size);
}

// A new tab of `size`; page errors and CSP violations are collected to fail the test.
async function newPage(size) {
  const page = await context.newPage();
  await page.setViewportSize(size);
  page.setDefaultTimeout(15000);
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) page.problems.push(`console: ${m.text()}`);
  });
  pages.add(page);
  return page;
}

function noProblems(page) {
  assert(page.problems.length === 0, page.problems.join('\n'));
}

async function noHorizontalOverflow(page) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  assert(scroll <= client, `the page is wider than the screen (${scroll} > ${client} px)`);
}

async function text(locator) {
  return (await locator.textContent()).trim();
}

async function expectText(locator, expected, what) {
  try {
    await locator.filter({ hasText: expected }).first().waitFor({ state: 'visible' });
  } catch (e) {
    const actual = await locator.first().textContent().catch(() => '(absent)');
    throw new Error(`${what}: expected "${expected}", saw "${actual && actual.trim()}"`);
  }
}

// ---- TOTP (RFC 6238: SHA-1, 6 digits, 30 s), as the colleague's phone computes it ----------

const secrets = {}; // username → base32 secret read off the enrolment screen
const lastStep = {}; // username → the last 30 s step whose code was used (codes work once)

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function totpAt(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(n).padStart(6, '0');
}

// A code not used before: waits for the next 30 s step when this one's code was spent.
async function freshCode(user) {
  let step = Math.floor(Date.now() / 30000);
  if (lastStep[user] !== undefined && step <= lastStep[user]) {
    await new Promise((r) => setTimeout(r, (lastStep[user] + 1) * 30000 - Date.now() + 300));
    step = lastStep[user] + 1;
  }
  lastStep[user] = step;
  return totpAt(secrets[user], step);
}

const visible = (locator, value) => locator.waitFor({ state: 'visible', timeout: 15000 }).then(() => value, () => null);

// Logs in; admin and finance enrol an authenticator at their first login (the QR and the secret
// are shown once) and give a fresh code at every later one.
async function consoleLogin(page, [user, pass], roleLabel) {
  await page.goto(`${BASE_URL}/bureau`);
  await page.fill('#login-username', user);
  await page.fill('#login-password', pass);
  await page.click('#login-form button[type=submit]');
  const outcome = await Promise.race([
    visible(page.locator('#app-view'), 'in'),
    visible(page.locator('#otp-field'), 'otp'),
    visible(page.locator('#totp-view'), 'enrol'),
  ]);
  if (outcome === 'enrol') {
    await page.waitForFunction(() => {
      const img = document.getElementById('totp-qr');
      return img && img.complete && img.naturalWidth > 0;
    });
    secrets[user] = await text(page.locator('#totp-secret'));
    assert(/^[A-Z2-7]{32}$/.test(secrets[user]), `TOTP secret looks wrong: "${secrets[user]}"`);
    await shot(page, `totp-enrol-${user}`);
    await page.click('#totp-done');
  } else if (outcome === 'otp') {
    assert(secrets[user], `${user} was asked for a code but never enrolled in this run`);
    await page.fill('#login-otp', await freshCode(user));
    await page.click('#login-form button[type=submit]');
  }
  await expectText(page.locator('#who-role'), roleLabel, 'role shown after login');
}

// The session token a page holds.
function tokenOf(page, key) {
  return page.evaluate((k) => sessionStorage.getItem(k), key);
}

async function statusWith(token, path) {
  const res = await fetch(`${BASE_URL}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  return res.status;
}

// ---- 1. The admin registers a platform ------------------------------------------------------

test('the admin logs into the console and registers a platform; its API key is shown once', async () => {
  const page = await newPage(DESKTOP);
  shared.console = page;
  await page.goto(`${BASE_URL}/bureau`);
  await page.fill('#login-username', ADMIN[0]);
  await page.fill('#login-password', 'not-the-password');
  await page.click('#login-form button[type=submit]');
  await expectText(page.locator('#login-form .error-box'), '用户名或密码不正确', 'wrong password sentence');
  await shot(page, '01-console-login-error');

  await consoleLogin(page, ADMIN, '管理员');
  await page.click('.sidebar a[data-page=platforms]');
  shared.platformName = `宝云工业互联网平台 ${randomInt(1000, 9999)}`;
  await page.fill('#platform-name', shared.platformName);
  await page.fill('#platform-uscc', makeUscc('91440300'));
  await page.click('#platform-form button[type=submit]');
  const key = page.locator('#new-api-key');
  await key.waitFor({ state: 'visible' });
  shared.apiKey = await text(key);
  assert(shared.apiKey.length >= 20, `API key looks too short: "${shared.apiKey}"`);
  await expectText(page.locator('#key-dialog h3'), '只显示这一次', 'the key dialog says it is shown once');
  await shots(page, '01-console-platform-key-admin');
  await page.click('#key-done');
  // Closed for good: the key is nowhere on the page any more.
  await page.locator('#key-dialog').waitFor({ state: 'detached' });
  assert(await page.locator('#new-api-key').count() === 0, 'the key is still on the page after closing');
  await expectText(page.locator('table.grid tbody tr'), shared.platformName, 'platform listed');
  await shot(page, '01-console-platform-key');

  // Next year's parameters, prepared ahead: created with the policy's defaults, then changed.
  await page.click('.sidebar a[data-page=program]');
  const next = Number(shanghaiMonth().slice(0, 4)) + 1;
  await page.click('#prepare-year');
  await expectText(page.locator('#confirm-text'), String(next), 'the confirmation names next year');
  await page.click('#confirm-yes');
  const box = page.locator(`#program-${next}`);
  await expectText(box, '¥50,000.00', 'next year created with the default cap');
  await page.fill(`#edit-quota-${next}`, '2500');
  await box.locator('button[type=submit]').click();
  await page.click('#confirm-yes');
  await expectText(box, '2,500 家', 'next year\'s quota changed');
  await shots(page, '01-console-program-admin');
  noProblems(page);
});

// ---- 2. A firm registers, claims and sees its QR, on a phone ----------------------------------

test('on a 375 px phone a firm registers, uploads its licence photo, the reviewer approves it in the console, and the firm logs in, quotes 15000.00, claims and sees the QR', async () => {
  assert(shared.platformName, 'no platform from test 1');
  const page = await newPage(PHONE);
  shared.portal = page;
  const uscc = makeUscc();
  shared.firmUscc = uscc;
  shared.firmPassword = `firm-pass-${randomInt(100000, 999999)}`;

  await page.goto(`${BASE_URL}/`);
  await page.locator('#view-login').waitFor({ state: 'visible' });
  await shot(page, '02-portal-login-375');
  await page.click('a[href="#/register"]');

  // The inline check: lower case is upper-cased, a wrong check digit is named.
  await page.fill('#reg-uscc', spoil(uscc).toLowerCase());
  await expectText(page.locator('#reg-uscc-hint'), '这个代码有误', 'inline USCC check');
  assert((await page.inputValue('#reg-uscc')) === spoil(uscc), 'USCC was not upper-cased');
  await shot(page, '02-portal-uscc-check-375');

  await page.fill('#reg-uscc', uscc);
  await expectText(page.locator('#reg-uscc-hint'), '正确', 'valid USCC accepted');
  await page.fill('#reg-name', `深圳市宝安精密电子有限公司${randomInt(100, 999)}`);
  await page.fill('#reg-industry', 'C3911');
  await page.selectOption('#reg-district', '宝安区');
  await page.fill('#reg-contact', '李敏');
  await page.fill('#reg-phone', '13800138000');
  await page.fill('#reg-password', shared.firmPassword);
  await page.fill('#reg-password2', shared.firmPassword);
  await noHorizontalOverflow(page);
  await shot(page, '02-portal-register-375');
  await page.click('#register-form button[type=submit]');

  await page.locator('#view-home').waitFor({ state: 'visible' });
  await expectText(page.locator('#eligibility'), '符合申领条件', 'eligibility');
  await expectText(page.locator('#cap-remaining'), '¥50,000.00', 'remaining cap');
  await shot(page, '02-portal-verify-375');
  await uploadLicence(page, '02-portal-uploaded-375');

  // The reviewer finds it in the queue, compares, approves with the prefilled code and district.
  const reviewer = await newPage(DESKTOP);
  shared.reviewerPage = reviewer;
  await consoleLogin(reviewer, REVIEWER, '审核员');
  await openFromQueue(reviewer, uscc);
  assert((await reviewer.inputValue('#decide-industry')) === 'C3911', 'industry code prefilled from the declaration');
  assert((await reviewer.inputValue('#decide-district')) === '宝安区', 'district prefilled from the declaration');
  await shot(reviewer, '02-console-firm-review');
  await reviewer.click('#decide-approve');
  await expectText(reviewer.locator('.page-msg'), '审核通过', 'approval confirmed');
  await expectText(reviewer.locator('.page-head'), '已通过', 'verified badge');
  noProblems(reviewer);

  // Log out and in again with the USCC and password.
  await page.click('#logout');
  await page.locator('#view-login').waitFor({ state: 'visible' });
  await page.fill('#login-uscc', uscc);
  await page.fill('#login-password', 'wrong-password-1');
  await page.click('#login-form button[type=submit]');
  await expectText(page.locator('#login-form .form-error'), '密码不正确', 'wrong password sentence');
  // The opening morning: the server sheds the first try with 503 and Retry-After; the page
  // says it is queueing and sends again by itself.
  let shed = 0;
  await page.route('**/api/portal/sessions', async (route) => {
    if (shed++ === 0) {
      await route.fulfill({
        status: 503,
        headers: { 'content-type': 'application/problem+json', 'retry-after': '2' },
        body: JSON.stringify({ type: 'urn:voucher:error:overloaded', title: 'The server is busy',
          status: 503, detail: 'busy', code: 'overloaded' }),
      });
    } else {
      await route.continue();
    }
  });
  await page.fill('#login-password', shared.firmPassword);
  await page.click('#login-form button[type=submit]');
  await expectText(page.locator('#queueing'), '排队中，请稍候', 'queueing notice while shed');
  await shot(page, '02-portal-queueing-375');
  await page.locator('#view-home').waitFor({ state: 'visible' });
  await page.unroute('**/api/portal/sessions');
  assert(shed === 2, `the login should have been sent twice, was sent ${shed} times`);
  assert(await page.locator('#queueing').isHidden(), 'the queueing notice goes away once answered');
  await expectText(page.locator('#eligibility'), '✓ 符合申领条件', 'eligibility after login');
  await expectText(page.locator('#cap-remaining'), '¥50,000.00', 'remaining cap after login');
  await expectText(page.locator('#me-card'), '全区剩余 2,000 个名额', 'quota left');
  assert(await page.locator('#verify-card').isHidden(), 'a verified firm needs no verification card');
  await page.locator('#claim-card').waitFor({ state: 'visible' });
  await noHorizontalOverflow(page);
  await shot(page, '02-portal-home-375');

  // Choose the platform, enter the fee, see the quote, claim.
  await page.selectOption('#claim-platform', { label: shared.platformName });
  await page.fill('#claim-fee', '50000.00');
  await page.click('#quote-button');
  await expectText(page.locator('#quote-face'), '¥15,000.00', 'quoted face value');
  await expectText(page.locator('#quote-facts'), '¥35,000.00', 'cap left after the claim');
  await noHorizontalOverflow(page);
  await shot(page, '02-portal-quote-375');
  await page.click('#claim-button');

  await page.locator('#view-voucher').waitFor({ state: 'visible' });
  const code = await text(page.locator('#voucher-code'));
  assert(/^BA\d{2}-[0-9A-Z]{4}-[0-9A-Z]{4}$/.test(code), `voucher code looks wrong: "${code}"`);
  shared.voucherCode = code;
  await page.waitForFunction(() => {
    const img = document.getElementById('qr-img');
    return img && img.complete && img.naturalWidth > 0;
  });
  const box = await page.locator('#qr-img').boundingBox();
  assert(box && box.width >= 260, `QR code is only ${box && box.width} px wide on the phone`);
  const src = await page.getAttribute('#qr-img', 'src');
  assert(src.startsWith('blob:'), `QR is not shown from a blob: URL (${src})`);
  await expectText(page.locator('#voucher-remaining'), '¥15,000.00', 'balance of the new voucher');
  await expectText(page.locator('#voucher-expiry'), '12-31 23:59', 'expiry in Asia/Shanghai');
  await noHorizontalOverflow(page);
  await shot(page, '02-portal-voucher-375');
  noProblems(page);
});

// ---- 2b. A rejection with its reason; upload again; a squatted USCC points to the bureau -------

test('a rejected firm sees the reason in the portal, uploads again and is pending again; the reviewer deletes the squatting registration and the USCC registers again', async () => {
  assert(shared.reviewerPage, 'no reviewer console (test 2 failed)');
  const page = await newPage(PHONE);
  const uscc = makeUscc();
  const password = `firm-pass-${randomInt(100000, 999999)}`;
  await page.goto(`${BASE_URL}/#/register`);
  await page.fill('#reg-uscc', uscc);
  await page.fill('#reg-name', `深圳市宝安模具制造有限公司${randomInt(100, 999)}`);
  await page.fill('#reg-industry', 'C3525');
  await page.selectOption('#reg-district', '宝安区');
  await page.fill('#reg-contact', '陈静');
  await page.fill('#reg-phone', '13900139000');
  await page.fill('#reg-password', password);
  await page.fill('#reg-password2', password);
  await page.click('#register-form button[type=submit]');
  await page.locator('#view-home').waitFor({ state: 'visible' });
  await uploadLicence(page);

  const reviewer = shared.reviewerPage;
  await openFromQueue(reviewer, uscc);
  const reason = '营业执照照片模糊，看不清企业名称，请重新拍摄';
  await reviewer.click('#decide-reject');
  await expectText(reviewer.locator('.page-msg'), '请填写不通过的原因', 'a reason is required');
  await reviewer.fill('#decide-reason', reason);
  await reviewer.click('#decide-reject');
  await expectText(reviewer.locator('.page-head'), '未通过', 'rejected badge');
  await shot(reviewer, '02b-console-rejected');

  await page.reload();
  await page.locator('#view-home').waitFor({ state: 'visible' });
  await expectText(page.locator('#verify-status'), '未通过', 'rejected status in the portal');
  await expectText(page.locator('#verify-reason'), reason, 'the reviewer\'s reason in the portal');
  assert(await page.locator('#claim-card').isHidden(), 'no claim form for a rejected firm');
  await noHorizontalOverflow(page);
  await shot(page, '02b-portal-rejected-375');
  await page.setInputFiles('#evidence-file', { name: 'licence-2.png', mimeType: 'image/png', buffer: LICENCE_PNG });
  await page.click('#evidence-upload');
  await expectText(page.locator('#verify-status'), '审核中', 'pending again after the new upload');
  assert(await page.locator('#verify-reason').isHidden(), 'the old reason is gone');

  // Someone registering this USCC again is told to call the bureau.
  await page.click('#logout');
  await page.locator('#view-login').waitFor({ state: 'visible' });
  await page.goto(`${BASE_URL}/#/register`);
  await page.fill('#reg-uscc', uscc);
  await page.fill('#reg-name', '冒名企业');
  await page.fill('#reg-industry', 'C3911');
  await page.fill('#reg-contact', '某人');
  await page.fill('#reg-phone', '13700137000');
  await page.fill('#reg-password', password + 'x');
  await page.fill('#reg-password2', password + 'x');
  await page.click('#register-form button[type=submit]');
  await expectText(page.locator('#register-form .form-error'), '请致电区工业和信息化局', 'already registered: call the bureau');
  await shot(page, '02b-portal-already-registered-375');

  // The bureau decides it was a squatter: the reviewer deletes the registration (confirmed),
  // and the USCC registers again.
  await openFromQueue(reviewer, uscc);
  await reviewer.click('#firm-delete');
  await reviewer.click('#confirm-yes');
  await reviewer.waitForURL(/#\/firms$/);
  await reviewer.locator('#firm-q').waitFor({ state: 'visible' });
  assert(await reviewer.locator('tr[data-uscc="' + uscc + '"]').count() === 0, 'the deleted firm left the queue');
  await page.click('#register-form button[type=submit]');
  await page.locator('#view-home').waitFor({ state: 'visible' });
  await expectText(page.locator('#verify-status'), '审核中', 'the real firm registered in its place');
  noProblems(page);
  noProblems(reviewer);
});

// ---- 3. The platform redeems; the portal shows the new balance --------------------------------

test('the platform redeems 10000.00 through its API (discount 3000.00) and the portal shows ¥12,000.00', async () => {
  assert(shared.apiKey && shared.voucherCode && shared.portal, 'nothing to redeem (tests 1–2 failed)');
  const invoice = `INV-E2E-${randomInt(100000, 999999)}`;
  shared.invoice = invoice;
  const res = await fetch(`${BASE_URL}/v1/redemptions`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${shared.apiKey}`,
      'Idempotency-Key': randomUUID(),
      'Content-Type': 'application/json',
    },
    body: JSON.stringify({ voucher: shared.voucherCode, invoice_no: invoice, bill_amount: '10000.00' }),
  });
  const body = await res.json();
  assert(res.status === 201, `redemption answered ${res.status}: ${JSON.stringify(body)}`);
  assert(body.discount === '3000.00', `discount ${body.discount}, expected 3000.00`);
  assert(body.voucher_remaining === '12000.00', `voucher_remaining ${body.voucher_remaining}`);

  const page = shared.portal;
  await page.reload();
  await expectText(page.locator('#voucher-remaining'), '¥12,000.00', 'balance after the redemption');
  await expectText(page.locator('#voucher-redeemed'), '¥3,000.00', 'redeemed amount');
  assert(await page.locator('#cancel-voucher').count() === 0, 'a used voucher still offers cancel');
  await noHorizontalOverflow(page);
  await shot(page, '03-portal-balance-375');

  await page.click('a.back');
  await expectText(page.locator('#voucher-list'), '¥12,000.00', 'balance in the voucher list');
  await expectText(page.locator('#cap-remaining'), '¥35,000.00', 'remaining cap after the claim');
  await shot(page, '03-portal-home-after-375');
  noProblems(page);
});

// ---- 4. A new finance colleague: activation code, authenticator ----------------------------

test('the admin creates a finance colleague; she activates with the code, enrols TOTP from the QR and logs in with a code', async () => {
  assert(shared.console, 'no admin console (test 1 failed)');
  const admin = shared.console;
  const user = `e2e-fin-${randomInt(1000, 9999)}`;
  const pass = `ledger-harbour-${randomInt(100000, 999999)}`;
  await admin.click('.sidebar a[data-page=staff]');
  await admin.fill('#staff-username', user);
  await admin.selectOption('#staff-role', 'finance');
  await admin.click('#staff-form button[type=submit]');
  const codeBox = admin.locator('#new-activation-code');
  await codeBox.waitFor({ state: 'visible' });
  const code = await text(codeBox);
  assert(/^[0-9A-Z]{5}(-[0-9A-Z]{5}){3}$/.test(code), `activation code looks wrong: "${code}"`);
  await expectText(admin.locator('#staff-list tr', { hasText: user }), '待激活', 'new account awaits activation');
  await shot(admin, '04-console-staff-created');

  // The colleague, in her own browser tab.
  const page = await newPage(DESKTOP);
  await page.goto(`${BASE_URL}/bureau#/activate`);
  await page.fill('#act-username', user);
  await page.fill('#act-code', code);
  await page.fill('#act-password', pass);
  await page.fill('#act-password2', pass);
  await page.click('#activate-form button[type=submit]');
  await page.locator('#act-done').waitFor({ state: 'visible' });
  await shot(page, '04-console-activated');
  // The code works once.
  await page.fill('#act-code', code);
  await page.fill('#act-password', pass);
  await page.fill('#act-password2', pass);
  await page.click('#activate-form button[type=submit]');
  await expectText(page.locator('#activate-form .error-box'), '激活码不正确、已使用或已过期', 'a used code is refused');

  await consoleLogin(page, [user, pass], '财务');
  assert(secrets[user], 'the first login did not enrol an authenticator');
  await page.click('#logout');
  await page.locator('#login-view').waitFor({ state: 'visible' });
  // From now on a code is needed.
  await consoleLogin(page, [user, pass], '财务');
  shared.newFinance = [user, pass];
  shared.newFinancePage = page;
  noProblems(page);
});

// ---- 5. The bureau closes the month, approves and pays ----------------------------------------

test('the reviewer closes the month; the new colleague approves; a second finance colleague pays; the console shows it paid with ¥3,000.00', async () => {
  assert(shared.invoice, 'no redemption to settle (test 3 failed)');
  assert(shared.newFinancePage, 'no new finance colleague (test 4 failed)');
  const month = shanghaiMonth();
  const page = await newPage(DESKTOP);

  // The reviewer runs today's settlement and closes the month.
  await consoleLogin(page, REVIEWER, '审核员');
  await page.click('.sidebar a[data-page=settlement]');
  const today = await page.evaluate(() => VC.today());
  await page.fill('#run-date', today);
  await page.click('#run-button');
  await page.locator('#report-box .report').waitFor({ state: 'visible' });
  await expectText(page.locator('#report-box .ok-banner'), '不变量均成立', 'settlement report');
  await shot(page, '05-console-settlement-run');

  await page.click('.sidebar a[data-page=statements]');
  assert((await page.inputValue('#statement-month')) === month, `month field is not ${month}`);
  await page.click('#close-month');
  // The month has not ended: the console says so and asks first.
  await expectText(page.locator('#confirm-text'), '还没有结束', 'warning before closing the current month');
  await page.click('#confirm-yes');
  const rowOf = (p) => p.locator('#statement-list tr[data-statement-id]', { hasText: shared.platformName });
  let row = rowOf(page);
  await expectText(row, '草稿', 'closed statement is a draft');
  await expectText(row.locator('.total'), '¥3,000.00', 'draft total');
  assert(await row.locator('button.approve').count() === 0, 'the reviewer is offered approval');
  await shot(page, '05-console-month-closed');
  await page.click('#logout');

  // The new colleague approves, and is not offered the payment (four eyes).
  const approver = shared.newFinancePage;
  await approver.click('.sidebar a[data-page=statements]');
  row = rowOf(approver);
  await expectText(row, '草稿', 'statement seen by the new colleague');
  await row.locator('button.approve').click();
  await expectText(approver.locator('#confirm-text'), '¥3,000.00', 'the approval confirmation names the amount');
  await expectText(approver.locator('#confirm-text'), month, 'the approval confirmation names the month');
  await expectText(approver.locator('#confirm-text'), '还没有结束', 'the approval warns the month has not ended');
  await shot(approver, '05-console-approve-confirm');
  await approver.click('#confirm-yes');
  await expectText(row, '已审核', 'approved statement');
  await expectText(row, '付款须由另一位财务同事登记', 'the approver is told someone else pays');
  assert(await row.locator('button.pay').count() === 0, 'the approver is offered the payment');
  await shot(approver, '05-console-statement-approved');

  // A second finance colleague pays.
  await consoleLogin(page, FINANCE, '财务');
  await page.click('.sidebar a[data-page=statements]');
  row = rowOf(page);
  await expectText(row, '已审核', 'approved statement seen by the payer');
  const reference = `TRSY-${month.replace('-', '')}-${randomInt(1000, 9999)}`;
  await row.locator('input.ref-input').fill(reference);
  await row.locator('button.pay').click();
  await expectText(page.locator('#confirm-text'), '¥3,000.00', 'the payment confirmation names the amount');
  await shots(page, '05-console-pay-confirm-finance');
  await page.click('#confirm-yes');
  await expectText(row, '已付款', 'paid statement');
  await expectText(row.locator('.total'), '¥3,000.00', 'paid total');
  await expectText(row, reference, 'payment reference');
  await shot(page, '05-console-statement-paid');
  shared.financePage = page;

  // The CSV export downloads and carries the invoice.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.locator('button', { hasText: '导出 CSV' }).click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert(csv.includes(shared.invoice), `the CSV export lacks invoice ${shared.invoice}`);
  assert(download.suggestedFilename().endsWith('.csv'), `export named ${download.suggestedFilename()}`);

  // The dashboard and the audit verification.
  await page.click('.sidebar a[data-page=dashboard]');
  await expectText(page.locator('#fig-redeemed'), '¥3,000.00', 'redeemed on the dashboard');
  await expectText(page.locator('#fig-granted'), '¥15,000.00', 'granted on the dashboard');
  await expectText(page.locator('#fig-admitted'), '1 / 2,000', 'firms admitted on the dashboard');
  await expectText(page.locator('#fig-budget'), '¥99,985,000.00', 'budget left on the dashboard');
  assert(await page.locator('#chart-day rect.bar').count() === 30, 'the daily chart has no 30 bars');
  await shot(page, '05-console-dashboard');

  await page.click('.sidebar a[data-page=audit]');
  await page.locator('#audit-ok').waitFor({ state: 'visible' });
  await expectText(page.locator('table.audit'), 'statement.pay', 'payment in the audit log');
  await shot(page, '05-console-audit');

  // The rules form (any role): the cloud voucher measure with its trace.
  await page.click('.sidebar a[data-page=rules]');
  await page.locator('#rules-measure option[value=cloud_voucher]').waitFor({ state: 'attached' });
  await page.selectOption('#rules-measure', 'cloud_voucher');
  await page.fill('#rules-fact-annual_fee', '50000.00');
  await page.click('#evaluate');
  await expectText(page.locator('#eval-award'), '¥15,000.00', 'evaluated award');
  assert(await page.locator('table.trace tbody tr').count() > 2, 'no trace shown');
  await shot(page, '05-console-rules');
  noProblems(page);
});


// ---- 5b. The firm's and the bureau's daily work -----------------------------------------------

// A redemption through the platform's API; resolves with its body.
async function redeem(voucher, invoice, bill) {
  const res = await fetch(`${BASE_URL}/v1/redemptions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${shared.apiKey}`, 'Idempotency-Key': randomUUID(), 'Content-Type': 'application/json' },
    body: JSON.stringify({ voucher: voucher, invoice_no: invoice, bill_amount: bill }),
  });
  const body = await res.json();
  assert(res.status === 201, `redemption answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

test('the firm sees its voucher\'s redemptions, newest first, with a reversal', async () => {
  assert(shared.portal && shared.voucherCode && shared.apiKey, 'no voucher (tests 1–3 failed)');
  const voided = `INV-VOID-${randomInt(100000, 999999)}`;
  const r = await redeem(shared.voucherCode, voided, '2000.00');
  const res = await fetch(`${BASE_URL}/v1/redemptions/${r.id}/reversal`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${shared.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ reason: '发票作废' }),
  });
  assert(res.status === 200, `reversal answered ${res.status}`);
  shared.voided = voided;

  const page = shared.portal;
  await page.goto(`${BASE_URL}/#/home`);
  await page.locator(`a.voucher-item[data-code="${shared.voucherCode}"]`).click();
  const list = page.locator('#redemption-list');
  await list.waitFor({ state: 'visible' });
  const items = list.locator('li');
  assert(await items.count() === 2, `expected 2 redemptions, saw ${await items.count()}`);
  await expectText(items.nth(0), voided, 'the newest redemption first');
  await expectText(items.nth(0), '已撤销', 'the reversal shown');
  await expectText(items.nth(1), shared.invoice, 'the first redemption with its invoice');
  await expectText(items.nth(1), '¥10,000.00', 'its bill');
  await expectText(items.nth(1), '¥3,000.00', 'its discount');
  await expectText(page.locator('#voucher-remaining'), '¥12,000.00', 'the reversal gave the discount back');
  await noHorizontalOverflow(page);
  await shots(page, '07-portal-voucher-redemptions');

  // The QR full screen, with "save image".
  await page.click('#qr-fullscreen');
  await page.waitForFunction(() => {
    const img = document.getElementById('qr-full-img');
    return img && img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:');
  });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#qr-save')]);
  assert(download.suggestedFilename().endsWith('.png'), `saved as ${download.suggestedFilename()}`);
  await shots(page, '07-portal-qr-fullscreen');
  await page.click('#qr-close');
  assert(await page.locator('#qr-full').isHidden(), 'the full-screen QR did not close');
  noProblems(page);
});

test('a cancelled voucher shows no QR and no copy button, below the usable one', async () => {
  assert(shared.portal && shared.platformName, 'no firm (test 2 failed)');
  const page = shared.portal;
  await page.goto(`${BASE_URL}/#/home`);
  await page.locator('#claim-platform option', { hasText: shared.platformName }).waitFor({ state: 'attached' });
  await page.selectOption('#claim-platform', { label: shared.platformName });
  await page.fill('#claim-fee', '10000.00');
  await page.click('#quote-button');
  await expectText(page.locator('#quote-face'), '¥3,000.00', 'quoted face value of the second voucher');
  await expectText(page.locator('#quote-expiry'), '12-31', 'the quote says when the voucher expires');
  await shots(page, '08-portal-quote');
  await page.click('#claim-button');
  await page.locator('#cancel-voucher').waitFor({ state: 'visible' });
  const code = await text(page.locator('#voucher-code'));
  await page.click('#cancel-voucher');
  await page.click('#confirm-yes');
  await page.locator('#voucher-closed').waitFor({ state: 'visible' });
  await expectText(page.locator('#voucher-closed'), '已取消', 'the voucher says it is cancelled');
  assert(await page.locator('#qr-img').count() === 0, 'a cancelled voucher still shows its QR');
  assert(await page.locator('#copy-code, #qr-fullscreen').count() === 0, 'a cancelled voucher still offers copy or full screen');
  await noHorizontalOverflow(page);
  await shots(page, '08-portal-cancelled');

  await page.click('a.back');
  const items = page.locator('#voucher-list a.voucher-item');
  await items.first().waitFor({ state: 'visible' });
  assert(await items.nth(0).getAttribute('data-code') === shared.voucherCode, 'the usable voucher is not first');
  assert(await items.nth(1).getAttribute('data-code') === code, 'the cancelled voucher is not below it');
  await expectText(page.locator('#voucher-list .list-sub'), '已不能使用', 'the heading above the closed ones');
  await shots(page, '08-portal-home');
  noProblems(page);
});

test('a reviewer finds the voucher by its code and sees its redemptions; the redemption look-up filters and exports', async () => {
  assert(shared.voucherCode && shared.voided, 'no redemptions (earlier tests failed)');
  const page = await newPage(WIDE);
  await consoleLogin(page, REVIEWER, '审核员');
  shared.reviewerPage = page;
  await page.click('.sidebar a[data-page=vouchers]');
  await page.fill('#voucher-q', shared.voucherCode.toLowerCase());
  await page.click('#voucher-search button[type=submit]');
  const detail = page.locator('#voucher-detail');
  await expectText(detail, shared.invoice, 'the redemption in the voucher\'s detail');
  await expectText(detail, shared.voided, 'the reversed one too');
  await expectText(detail, '已撤销', 'marked reversed');
  await expectText(page.locator('#voucher-results'), shared.voucherCode, 'the voucher listed');
  await shots(page, '09-console-vouchers-reviewer');

  await page.click('.sidebar a[data-page=redemptions]');
  await page.selectOption('#redemption-status', 'reversed');
  await page.click('#redemption-search button[type=submit]');
  await expectText(page.locator('#redemption-results'), shared.voided, 'the reversed redemption found');
  assert(await page.locator('#redemption-results tr', { hasText: shared.invoice }).count() === 0, 'the active one is filtered out');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#redemption-csv')]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert(csv.charCodeAt(0) === 0xfeff, 'the CSV has no byte-order mark');
  assert(csv.includes('\t' + shared.voided), 'the invoice is not written as text in the CSV');
  await shots(page, '09-console-redemptions-reviewer');
  noProblems(page);
});

test('the award form records an award and counts it against the quota; the calculator evaluates a measure from the form', async () => {
  const page = shared.reviewerPage;
  assert(page, 'no reviewer (previous test failed)');
  await page.click('.sidebar a[data-page=awards]');
  await page.locator('#award-measure option[value=application_benchmark]').waitFor({ state: 'attached' });
  await page.selectOption('#award-measure', 'application_benchmark');
  await expectText(page.locator('#award-quota'), '已登记', 'the quota used shown');
  const applicant = makeUscc('91440306');
  await page.fill('#award-uscc', applicant);
  await page.check('#award-fact-selected');
  await page.click('#award-record');
  await expectText(page.locator('#confirm-text'), applicant, 'the confirmation names the applicant');
  await page.click('#confirm-yes');
  await expectText(page.locator('#award-list'), applicant, 'the award in the year\'s list');
  await expectText(page.locator('#award-list'), '¥1,000,000.00', 'its amount');
  await expectText(page.locator('#award-used'), '1', 'one award of the quota used');
  await shots(page, '10-console-awards-reviewer');

  await page.click('.sidebar a[data-page=rules]');
  await page.locator('#rules-measure option[value=standard_setting]').waitFor({ state: 'attached' });
  await page.selectOption('#rules-measure', 'standard_setting');
  await page.fill('#rules-fact-international_standards', '0');
  await page.fill('#rules-fact-national_standards', '2');
  await page.fill('#rules-fact-industry_standards', '0');
  await page.click('#evaluate');
  await expectText(page.locator('#eval-award'), '¥1,000,000.00', 'two national standards at 500,000.00 each');
  const trace = await text(page.locator('table.trace'));
  assert(!/threshold|condition|compute|award|fixed amount|\bmet\b|_standards/.test(trace), `English in the trace: ${trace}`);
  // A wrong fact is named in Chinese.
  await page.fill('#rules-fact-national_standards', '1.5');
  await page.click('#evaluate');
  await expectText(page.locator('.page-msg'), '国家标准', 'the wrong fact named in Chinese');
  await shots(page, '10-console-rules-reviewer');
  noProblems(page);
});

test('the finance officer sees both program years, the keys with their dates, and exports the month summary', async () => {
  const page = shared.financePage;
  assert(page, 'no finance page (test 5 failed)');
  await page.click('.sidebar a[data-page=program]');
  const year = Number(shanghaiMonth().slice(0, 4));
  await page.locator(`#program-${year}`).waitFor({ state: 'visible' });
  await page.locator(`#program-${year + 1}`).waitFor({ state: 'visible' });
  await expectText(page.locator(`#program-${year + 1}`), String(year + 1), 'next year shown');
  await shots(page, '11-console-program-finance');

  await page.click('.sidebar a[data-page=statements]');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#summary-xlsx')]);
  assert(download.suggestedFilename().endsWith('summary.xlsx'), `summary named ${download.suggestedFilename()}`);
  await shots(page, '11-console-statements-finance');

  await page.click('.sidebar a[data-page=platforms]');
  await expectText(page.locator('table.keys thead'), '最近使用', 'keys listed with their last use');
  await expectText(page.locator('table.keys tbody'), '有效', 'and their state');
  await shots(page, '11-console-platforms-finance');
  await page.click('.sidebar a[data-page=vouchers]');
  await page.locator('#voucher-results table').waitFor({ state: 'visible' });
  await shots(page, '11-console-vouchers-finance');
  noProblems(page);
});

// ---- 6. Logging out ends the session ------------------------------------------------------------

test('logging out ends the session on the server: the old token gets 401 in the portal and the console', async () => {
  assert(shared.portal && shared.financePage, 'no pages to log out of (tests 2 and 5 failed)');
  const portal = shared.portal;
  await portal.goto(`${BASE_URL}/#/home`);
  await portal.locator('#view-home').waitFor({ state: 'visible' });
  const firmToken = await tokenOf(portal, 'voucher.portal.token');
  assert(firmToken, 'the portal holds no token');
  assert(await statusWith(firmToken, '/api/portal/me') === 200, 'the firm token does not work before logout');
  await portal.click('#logout');
  await portal.locator('#view-login').waitFor({ state: 'visible' });
  const firmAfter = await statusWith(firmToken, '/api/portal/me');
  assert(firmAfter === 401, `the logged-out firm token answered ${firmAfter}`);
  // Nothing of the previous firm is left in the page.
  assert(await portal.inputValue('#claim-fee') === '', 'the fee stays in the form after logout');
  assert((await portal.locator('#me-card, #voucher-list, #voucher-detail').allTextContents()).join('') === '', 'the firm\'s data stays in the page after logout');
  await expectText(portal.locator('#intro-cap'), '¥50,000.00', 'the cap from the API on the login page');
  await shots(portal, '06-portal-logged-out');

  const console_ = shared.financePage;
  const staffToken = await tokenOf(console_, 'voucher.console.token');
  assert(staffToken, 'the console holds no token');
  assert(await statusWith(staffToken, '/api/bureau/statements?month=' + shanghaiMonth()) === 200, 'the staff token does not work before logout');
  await console_.click('#logout');
  await console_.locator('#login-view').waitFor({ state: 'visible' });
  const staffAfter = await statusWith(staffToken, '/api/bureau/statements?month=' + shanghaiMonth());
  assert(staffAfter === 401, `the logged-out staff token answered ${staffAfter}`);
  await shot(console_, '06-console-logged-out');
  noProblems(portal);
  noProblems(console_);
});

// ---- Run ------------------------------------------------------------------------------------

const profile = mkdtempSync(path.join(tmpdir(), 'voucher-e2e-'));
let passed = 0;
let failed = 0;
try {
  // Playwright refuses --user-data-dir among the args; a persistent context is how it takes one.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--lang=zh-CN'],
    viewport: DESKTOP,
    locale: 'zh-CN',
    acceptDownloads: true,
  });
  for (const p of context.pages()) await p.close();
  for (const [i, t] of tests.entries()) {
    try {
      await t.fn();
      passed++;
      console.log(`ok - ${t.name}`);
    } catch (err) {
      failed++;
      console.log(`not ok - ${t.name}`);
      console.log(String(err && err.stack ? err.stack : err).split('\n').map((l) => `  # ${l}`).join('\n'));
      let n = 0;
      for (const page of pages) {
        n++;
        await shot(page, `fail-${String(i + 1).padStart(2, '0')}-page${n}`).catch(() => {});
      }
    }
  }
} catch (err) {
  console.log(`not ok - launching Chromium: ${err.message}`);
  failed++;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
