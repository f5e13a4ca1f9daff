// The bureau console: log in by role (admin and finance with a TOTP code; their first login
// enrols the authenticator from a QR), activate a new account (#/activate), then pages switched
// by the URL hash (#/dashboard, #/platforms, #/program, #/settlement, #/statements, #/audit,
// #/rules, #/staff, #/account, #/firms and #/firms/<id>), each built into
// <main id="content"> from the API's answers. What a role may not do is hidden or disabled;
// the API's 403 sentence is still shown if it happens.
'use strict';

(function () {
  const { h, svg, clear, money, toFen, fromFen } = VC;
  const $ = (id) => document.getElementById(id);

  const api = VC.createClient('voucher.console.token', () => {
    api.clear();
    loginError('登录已过期，请重新登录。');
    route();
  });

  const ROLES = { admin: '管理员', reviewer: '审核员', finance: '财务' };

  // Who may do what (mirrors the API's checks; the API stays the authority).
  const CAN = {
    managePlatforms: ['admin'],
    editProgram: ['admin'],
    runSettlement: ['reviewer'],
    closeMonth: ['reviewer'],
    approvePay: ['finance'],
    manageStaff: ['admin'],
    recordAwards: ['reviewer'],
    readFirms: ['reviewer', 'admin'],
    verifyFirms: ['reviewer'],
    resetFirmPassword: ['reviewer', 'admin'],
  };

  const STATEMENT_STATUS = {
    draft: ['草稿', 'warn'],
    approved: ['已审核', 'info'],
    paid: ['已付款', 'ok'],
  };

  const INVARIANTS = {
    journal_balanced: '会计分录借贷平衡',
    voucher_redeemed_within_face_value: '每张消费券已核销金额不超过面额',
    voucher_balance_matches_journal: '消费券余额与分录一致',
    firm_granted_within_cap: '每家企业获券总额不超过上限',
    discount_within_rate: '每笔抵扣不超过账单的 30%',
    admitted_firms_within_quota: '入选企业数不超过年度名额',
    invoice_redeemed_once: '同一发票号只核销一次',
    redemptions_journaled: '每笔核销都有会计分录',
    admitted_firms_are_holders: '入选企业都持有或用过本年度消费券',
    voucher_redeemed_matches_redemptions: '消费券已核销金额与核销记录一致',
    program_totals_match_journal: '年度汇总与会计分录一致',
  };

  const ACTIONS = {
    'api_key.issue': '签发 API 密钥',
    'api_key.revoke': '吊销 API 密钥',
    'award.record': '登记奖励',
    'firm.register': '企业注册',
    'firm.evidence_upload': '企业上传审核材料',
    'firm.evidence_view': '查看企业审核材料',
    'firm.verification': '企业资质审核',
    'firm.delete': '删除企业注册',
    'platform.register': '登记平台',
    'program.update': '修改年度参数',
    'redemption.create': '核销',
    'redemption.reverse': '撤销核销',
    'session.login': '登录',
    'session.login_failed': '登录失败',
    'staff.create': '创建人员账号',
    'staff.activate': '激活账号',
    'staff.update': '修改人员账号',
    'staff.reset': '重置人员账号',
    'staff.password_change': '修改密码',
    'staff.totp_enrol': '绑定身份验证器',
    'session.logout': '退出登录',
    'firm.password_change': '企业修改密码',
    'firm.password_reset': '企业重置密码',
    'firm.password_reset_issued': '签发企业密码重置码',
    'statement.approve': '审核结算单',
    'statement.close_month': '月度关账',
    'statement.pay': '结算单付款',
    'voucher.cancel': '取消消费券',
    'voucher.claim': '申领消费券',
  };

  // Example facts for each measure of MEASURES.md, to start from.
  const FACT_EXAMPLES = {
    innovation_center: { level: 'provincial', higher_level_funding: '10000000.00', total_investment: '60000000.00', government_funding_received: '10000000.00' },
    standard_setting: { international_standards: 0, national_standards: 1, industry_standards: 2 },
    key_tech_project: { actual_investment: '3000000.00' },
    identifier_node_operator: { annual_new_registrations: 25000000, monthly_avg_resolutions: 1500000 },
    identifier_node_matching: { superior_funding: '2000000.00', total_investment: '8000000.00', government_funding_received: '0.00' },
    industry_platform: { annual_transaction_volume: '1200000000.00', customers: 3500, platform_service_revenue: '60000000.00' },
    professional_platform: { customers: 120, revenue: '12000000.00' },
    cross_industry_platform: { miit_certified: true },
    cross_industry_relocation: { relocated_to_baoan: true, operates_cross_industry_in_baoan: true, annual_revenue: '30000000.00' },
    promotion_center: { has_simulated_line: true, has_validation_capability: true, has_showcase: true, total_investment: '20000000.00', government_funding_received: '0.00', national_key_lab: false },
    resource_pool: { selected: true, annual_revenue: '25000000.00' },
    cloud_voucher: { annual_fee: '50000.00', granted_this_year: '0.00' },
    identifier_adoption: { registrations: 1200000, monthly_avg_resolutions: 150000 },
    application_benchmark: { selected: true },
    equipment_upgrade: { equipment_investment: '8000000.00', subsidy_rate: '0.20', local_equipment_investment: '3000000.00' },
    smart_manufacturing_benchmark: { selected: true },
    park_5g: { selected: true },
    cluster_pilot: { lead_unit: true, accepted_level: 'national' },
    guide_fund_equity: { guide_fund_investment: '50000000.00' },
    equity_investment: { equity_investment: '12000000.00' },
    financing_facilitation: { facilitated_financing: '1500000000.00' },
    training_base: { recognized: true, approved_amount: '600000.00' },
    association: { passed_assessment: true, previously_awarded: false },
  };

  let session = null; // {role, name}

  function can(what) {
    return !!session && CAN[what].includes(session.role);
  }

  // ---- Small builders ------------------------------------------------------------------------

  function errorText(err, overrides) {
    return VC.errorText(err, overrides, true);
  }

  function msgArea() {
    return h('div', { className: 'page-msg', attrs: { role: 'status' } });
  }

  function say(area, text, kind) {
    clear(area);
    if (text) area.append(h('p', { className: 'msg ' + (kind || 'info'), text: text }));
    if (text && kind === 'error' && area.isConnected) area.scrollIntoView({ block: 'nearest' });
  }

  function card(title, ...children) {
    return h('section', { className: 'card' }, title ? h('h2', { text: title }) : null, ...children);
  }

  function field(label, input, hint) {
    return h('label', { className: 'field' }, h('span', { className: 'label', text: label }), input,
      hint ? h('span', { className: 'hint', text: hint }) : null);
  }

  function roleNote(text) {
    return h('p', { className: 'role-note', text: '权限提示：' + text });
  }

  // columns: [{label, cell(row) → node|string, className}]
  function table(columns, rows, opts) {
    opts = opts || {};
    const tbody = h('tbody');
    for (const row of rows) {
      const tr = h('tr', opts.rowProps ? opts.rowProps(row) : null);
      for (const c of columns) {
        const v = c.cell(row);
        tr.append(h('td', { className: c.className || '' }, v instanceof Node ? v : String(v === null || v === undefined ? '—' : v)));
      }
      tbody.append(tr);
      if (opts.after) {
        const extra = opts.after(row, columns.length);
        if (extra) tbody.append(extra);
      }
    }
    if (!rows.length) {
      tbody.append(h('tr', null, h('td', { className: 'empty', colSpan: columns.length, text: opts.empty || '暂无数据' })));
    }
    return h('table', { className: 'grid' + (opts.className ? ' ' + opts.className : '') },
      h('thead', null, h('tr', null, columns.map((c) => h('th', { className: c.className || '', text: c.label })))),
      tbody);
  }

  function badge(text, kind) {
    return h('span', { className: 'badge ' + kind, text: text });
  }

  async function busy(button, text, fn) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = text;
    try {
      return await fn();
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }

  function confirmDialog(text, yesLabel) {
    const dialog = $('confirm-dialog');
    $('confirm-text').textContent = text;
    $('confirm-yes').textContent = yesLabel || '确定';
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
      dialog.returnValue = '';
      dialog.showModal();
    });
  }

  function percent(part, whole) {
    if (!whole) return '—';
    return (Math.round((part / whole) * 1000) / 10).toFixed(1) + '%';
  }

  // ---- Log in and routing --------------------------------------------------------------------

  function loginError(text) {
    const p = document.querySelector('#login-form .error-box');
    p.textContent = text || '';
    p.hidden = !text;
  }

  function loadSession() {
    const token = api.token();
    if (!token) return null;
    const claims = VC.jwtPayload(token);
    if (!claims || !ROLES[claims.role] || (claims.exp && claims.exp * 1000 < Date.now())) {
      api.clear();
      return null;
    }
    return { role: claims.role, name: claims.name || '' };
  }

  function otpField(show) {
    $('otp-field').hidden = !show;
    if (!show) $('login-otp').value = '';
  }

  function setupLogin() {
    const form = $('login-form');
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const username = $('login-username').value.trim();
      const password = $('login-password').value;
      const otp = $('login-otp').value.trim();
      if (!username || !password) {
        loginError('请输入用户名和密码。');
        return;
      }
      loginError('');
      const body = { username: username, password: password };
      if (!$('otp-field').hidden && otp) body.otp = otp;
      try {
        const s = await busy(form.querySelector('button[type=submit]'), '正在登录…',
          () => api.post('/api/bureau/sessions', body, { auth: false }));
        api.setToken(s.token);
        $('login-password').value = '';
        otpField(false);
        if (s.totp_setup) {
          showTotpSetup(s.totp_setup);
          return;
        }
        if (!location.hash || location.hash === '#/login' || location.hash === '#/activate') location.hash = '#/dashboard';
        route();
      } catch (err) {
        if (err.code === 'otp_required') {
          otpField(true);
          loginError(!$('otp-field').hidden && otp ? '' : '请输入身份验证器上的 6 位动态验证码。');
          $('login-otp').focus();
          return;
        }
        $('login-otp').value = '';
        loginError(errorText(err, {
          unauthorized: $('otp-field').hidden ? '用户名或密码不正确。' : '用户名、密码或动态验证码不正确（每个验证码只能用一次，请等下一个）。',
          rate_limited: '密码错误次数过多，账号已暂时锁定，请稍后再试。',
        }));
      }
    });
    $('logout').addEventListener('click', async () => {
      await api.logout('/api/bureau/sessions/current');
      loginError('');
      otpField(false);
      location.hash = '#/dashboard';
      route();
    });
    $('totp-done').addEventListener('click', () => {
      enrolling = false;
      $('totp-secret').textContent = '';
      $('totp-qr').removeAttribute('src');
      $('totp-view').hidden = true;
      if (!location.hash || location.hash === '#/login' || location.hash === '#/activate') location.hash = '#/dashboard';
      route();
    });
    setupActivation();
  }

  // While the secret is on screen, routing leaves it there until the person says it is saved.
  let enrolling = false;

  // The secret is shown this once: a QR of the otpauth URI and the base32 text.
  function showTotpSetup(setup) {
    enrolling = true;
    $('login-view').hidden = true;
    $('app-view').hidden = true;
    $('activate-view').hidden = true;
    $('totp-qr').src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(setup.qr_svg);
    $('totp-secret').textContent = setup.secret;
    $('totp-view').hidden = false;
    $('totp-done').focus();
  }

  function setupActivation() {
    const form = $('activate-form');
    const error = (text) => {
      const p = form.querySelector('.error-box');
      p.textContent = text || '';
      p.hidden = !text;
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      $('act-done').hidden = true;
      const body = {
        username: $('act-username').value.trim(),
        activation_code: $('act-code').value.trim(),
        password: $('act-password').value,
      };
      if (!body.username || !body.activation_code || !body.password) {
        error('请填写用户名、激活码和密码。');
        return;
      }
      if (body.password !== $('act-password2').value) {
        error('两次输入的密码不一致。');
        return;
      }
      error('');
      try {
        await busy(form.querySelector('button[type=submit]'), '正在激活…',
          () => api.post('/api/bureau/activation', body, { auth: false }));
        $('act-password').value = '';
        $('act-password2').value = '';
        $('act-code').value = '';
        $('act-done').hidden = false;
        $('login-username').value = body.username;
      } catch (err) {
        error(errorText(err, {
          validation_failed: err.field === 'activation_code'
            ? '激活码不正确、已使用或已过期，请向管理员重新申请。' : undefined,
        }));
      }
    });
  }

  const PAGES = {
    dashboard: renderDashboard,
    platforms: renderPlatforms,
    program: renderProgram,
    settlement: renderSettlement,
    statements: renderStatements,
    audit: renderAudit,
    rules: renderRules,
    vouchers: renderVouchers,
    redemptions: renderRedemptions,
    awards: renderAwards,
    staff: renderStaff,
    account: renderAccount,
    firms: renderFirms,
  };

  function route() {
    if (enrolling) return;
    session = loadSession();
    $('totp-view').hidden = true;
    const activating = !session && location.hash === '#/activate';
    $('activate-view').hidden = !activating;
    $('login-view').hidden = !!session || activating;
    $('app-view').hidden = !session;
    if (!session) {
      (activating ? $('act-username') : $('login-username')).focus();
      return;
    }
    $('nav-staff').hidden = !can('manageStaff');
    $('nav-firms').hidden = !can('readFirms');
    $('who-name').textContent = session.name;
    $('who-role').textContent = ROLES[session.role];
    $('who-role').className = 'role-badge ' + session.role;
    const m = location.hash.match(/^#\/([a-z]+)/);
    const page = m && PAGES[m[1]] ? m[1] : 'dashboard';
    for (const a of document.querySelectorAll('.sidebar a')) a.classList.toggle('active', a.dataset.page === page);
    const content = clear($('content'));
    const root = h('div', { className: 'page', id: 'page-' + page });
    content.append(root);
    PAGES[page](root);
  }

  // ---- Dashboard -----------------------------------------------------------------------------

  function renderDashboard(root) {
    const year = h('input', { type: 'number', id: 'dash-year', min: 2021, max: 2100, value: VC.thisYear(), className: 'narrow' });
    const body = h('div');
    const msg = msgArea();
    const load = async () => {
      clear(body).append(h('p', { className: 'muted', text: '正在加载…' }));
      say(msg, '');
      try {
        const [p, stats] = await Promise.all([
          api.get('/api/bureau/programs/' + year.value),
          api.get('/api/bureau/stats?year=' + year.value),
        ]);
        clear(body).append(dashboardFigures(p), dashboardCharts(p, stats));
      } catch (err) {
        clear(body);
        say(msg, errorText(err), 'error');
      }
    };
    root.append(
      h('div', { className: 'page-head' },
        h('h1', { text: '概览' }),
        h('form', { className: 'inline', on: { submit: (e) => { e.preventDefault(); load(); } } },
          field('年度', year), h('button', { type: 'submit', className: 'ghost', text: '刷新' }))),
      msg, body);
    load();
  }

  function dashboardFigures(p) {
    const budgetFen = p.firm_quota * toFen(p.cap_per_firm);
    const leftFen = budgetFen - toFen(p.granted_total);
    const figure = (label, value, sub, extra, id) => h('div', { className: 'figure', id: id },
      h('div', { className: 'figure-label', text: label }),
      h('div', { className: 'figure-value', text: value }),
      sub ? h('div', { className: 'figure-sub', text: sub }) : null,
      extra || null);
    return h('div', null,
      h('div', { className: 'figures' },
        figure('入选企业 / 年度名额', VC.integer(p.firms_admitted) + ' / ' + VC.integer(p.firm_quota),
          '已用 ' + percent(p.firms_admitted, p.firm_quota) + '，剩余 ' + VC.integer(p.firm_quota - p.firms_admitted) + ' 个名额',
          h('progress', { className: 'bar', max: p.firm_quota || 1, value: p.firms_admitted }), 'fig-admitted'),
        figure('已发放（面额）', money(p.granted_total), '未取消、未失效的消费券', null, 'fig-granted'),
        figure('已核销', money(p.redeemed_total), '占已发放 ' + percent(toFen(p.redeemed_total), toFen(p.granted_total)), null, 'fig-redeemed'),
        figure('预算余额', money(fromFen(leftFen)), '名额 × 每户上限 = ' + money(fromFen(budgetFen)) + '，减去已发放',
          h('progress', { className: 'bar', max: budgetFen || 1, value: Math.max(0, leftFen) }), 'fig-budget'),
        figure('有效消费券', VC.integer(p.vouchers_active) + ' 张', '状态为可使用', null, 'fig-active')),
      h('p', { className: 'muted params-line', text:
        p.year + ' 年度参数：补贴比例 ' + Math.round(Number(p.rate) * 100) + '%，每户上限 ' + money(p.cap_per_firm) +
        '，未使用 ' + p.claim_validity_days + ' 天失效，核销截止 ' + VC.dateTime(p.redeem_deadline) + '（北京时间）' }));
  }

  function dashboardCharts(p, stats) {
    // Per day: the 30 days up to today (or up to Dec 31 of a past year).
    const byDay = new Map(stats.per_day.map((d) => [d.period, d]));
    const todayStr = VC.today();
    let end = Number(todayStr.slice(0, 4)) > p.year ? p.year + '-12-31' : todayStr;
    if (Number(todayStr.slice(0, 4)) < p.year) end = p.year + '-01-30';
    const endDate = new Date(end + 'T12:00:00Z');
    const days = [];
    for (let i = 29; i >= 0; i--) {
      const d = new Date(endDate.getTime() - i * 86400000).toISOString().slice(0, 10);
      const row = byDay.get(d);
      days.push({ label: d.slice(5), value: row ? toFen(row.discount) : 0, count: row ? row.redemptions : 0, full: d });
    }
    const byMonth = new Map(stats.per_month.map((m) => [m.period, m]));
    const months = [];
    for (let m = 1; m <= 12; m++) {
      const key = p.year + '-' + String(m).padStart(2, '0');
      const row = byMonth.get(key);
      months.push({ label: m + '月', value: row ? toFen(row.discount) : 0, count: row ? row.redemptions : 0, full: key });
    }
    const totalCount = stats.per_day.reduce((n, d) => n + d.redemptions, 0);
    return h('div', { className: 'charts' },
      card('每日核销金额（近 30 天）', barChart(days, 'chart-day'),
        h('p', { className: 'muted small', text: '柱高为当日核销抵扣金额，鼠标停留可见笔数。全年共 ' + VC.integer(totalCount) + ' 笔。' })),
      card('每月核销金额（' + p.year + ' 年）', barChart(months, 'chart-month')));
  }

  // A bar chart of fen amounts, drawn as SVG (scales with its container).
  function barChart(data, id) {
    const W = 600, H = 250, left = 66, right = 10, top = 24, bottom = 34;
    const plotW = W - left - right, plotH = H - top - bottom;
    const max = Math.max(...data.map((d) => d.value), 0);
    const scaleMax = niceMax(max);
    const chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', id: id, role: 'img',
      'aria-label': data.map((d) => d.full + ' ' + money(fromFen(d.value))).join('；') });
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      chart.append(svg('line', { x1: left, x2: W - right, y1: y, y2: y, class: i === 0 ? 'axis' : 'gridline' }));
      chart.append(svg('text', { x: left - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, shortYuan((scaleMax * i) / 4)));
    }
    const slot = plotW / data.length;
    const barW = Math.max(2, slot * 0.7);
    const every = Math.ceil(data.length / 12);
    data.forEach((d, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      const bh = scaleMax ? (d.value / scaleMax) * plotH : 0;
      const bar = svg('rect', { x: x, y: top + plotH - bh, width: barW, height: Math.max(bh, d.value ? 1 : 0), class: 'bar' });
      bar.append(svg('title', {}, d.full + '：' + d.count + ' 笔，' + money(fromFen(d.value))));
      chart.append(bar);
      if (d.value && barW >= 14) {
        chart.append(svg('text', { x: x + barW / 2, y: top + plotH - bh - 4, class: 'value', 'text-anchor': 'middle' }, shortYuan(d.value)));
      }
      if (i % every === 0 || i === data.length - 1) {
        chart.append(svg('text', { x: left + i * slot + slot / 2, y: H - bottom + 16, class: 'tick', 'text-anchor': 'middle' }, d.label));
      }
    });
    if (!max) {
      chart.append(svg('text', { x: left + plotW / 2, y: top + plotH / 2, class: 'nodata', 'text-anchor': 'middle' }, '暂无核销'));
    }
    return chart;
  }

  // The axis top: four round steps (1, 2, 2.5 or 5 × 10^k yuan each) covering `fen`.
  function niceMax(fen) {
    if (fen <= 0) return 0;
    const step = fen / 100 / 4;
    const pow = Math.pow(10, Math.floor(Math.log10(step)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= step) return m * pow * 4 * 100;
    return 40 * pow * 100;
  }

  // Fen → "¥3,000" / "¥1.2万" for axis labels.
  function shortYuan(fen) {
    const yuan = fen / 100;
    if (yuan >= 10000) return '¥' + (Math.round(yuan / 1000) / 10) + '万';
    return '¥' + VC.integer(Math.round(yuan));
  }

  // ---- Platforms and keys --------------------------------------------------------------------

  function renderPlatforms(root) {
    const msg = msgArea();
    const list = h('div');
    const admin = can('managePlatforms');

    const showKey = showKeyOnce;

    const load = async () => {
      try {
        const platforms = await api.get('/api/bureau/platforms');
        clear(list).append(platformTable(platforms));
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    };

    const platformTable = (platforms) => table([
      { label: '平台名称', cell: (p) => h('strong', { text: p.name }) },
      { label: '运营方统一社会信用代码', cell: (p) => h('span', { className: 'mono', text: p.uscc }) },
      { label: '状态', cell: (p) => p.active ? badge('启用', 'ok') : badge('停用', 'muted') },
      { label: 'API 密钥', cell: (p) => keyList(p) },
      {
        label: '操作', cell: (p) => admin
          ? h('button', { type: 'button', className: 'ghost small', text: '新增密钥', on: { click: (e) => addKey(p, e.currentTarget) } })
          : '—',
      },
    ], platforms, { empty: '还没有登记平台。', rowProps: (p) => ({ dataset: { platformId: p.id } }) });

    // Newest first, each with when it was issued, last used and revoked, the newest marked.
    const keyList = (p) => {
      if (!p.keys.length) return h('span', { className: 'muted', text: '无' });
      const keys = p.keys.slice().sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
      const newest = keys.find((k) => !k.revoked_at);
      return table([
        { label: '密钥', cell: (k) => h('span', null, h('span', { className: 'mono', text: k.display + '…' }), k === newest && keys.length > 1 ? badge('最新', 'info') : null) },
        { label: '状态', cell: (k) => k.revoked_at ? badge('已吊销', 'muted') : badge('有效', 'ok') },
        { label: '签发', cell: (k) => VC.dateTime(k.created_at) },
        { label: '最近使用', cell: (k) => k.last_used_at ? VC.dateTime(k.last_used_at) : '从未使用' },
        { label: '吊销', cell: (k) => k.revoked_at ? VC.dateTime(k.revoked_at) : '—' },
        {
          label: '', cell: (k) => admin && !k.revoked_at
            ? h('button', { type: 'button', className: 'danger-outline small', text: '吊销', on: { click: (e) => revokeKey(p, k, e.currentTarget) } })
            : '',
        },
      ], keys, { className: 'keys inner', rowProps: (k) => ({ className: k.revoked_at ? 'revoked' : '', dataset: { keyId: k.key_id } }) });
    };

    const addKey = async (p, button) => {
      say(msg, '');
      try {
        const issued = await busy(button, '签发中…', () => api.post('/api/bureau/platforms/' + p.id + '/api-keys'));
        showKey('新 API 密钥', p.name, issued.api_key);
        say(msg, '已为「' + p.name + '」签发新密钥。旧密钥仍然有效，平台换用新密钥后请吊销旧密钥。', 'success');
        load();
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    };

    const revokeKey = async (p, k, button) => {
      const ok = await confirmDialog('确定吊销平台「' + p.name + '」的密钥 ' + k.display + '… 吗？吊销后使用该密钥的请求会立即被拒绝，且不能恢复。', '吊销');
      if (!ok) return;
      say(msg, '');
      try {
        await busy(button, '吊销中…', () => api.request('DELETE', '/api/bureau/api-keys/' + k.key_id));
        say(msg, '密钥 ' + k.display + '… 已吊销。', 'success');
        load();
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    };

    root.append(h('div', { className: 'page-head' }, h('h1', { text: '平台与密钥' })), msg);

    if (admin) {
      const name = h('input', { id: 'platform-name', autocomplete: 'off', placeholder: '如：某某工业云' });
      const uscc = h('input', { id: 'platform-uscc', autocomplete: 'off', maxLength: 18, className: 'mono', placeholder: '18 位' });
      const usccHint = h('span', { className: 'hint' });
      uscc.addEventListener('input', () => {
        uscc.value = uscc.value.toUpperCase().replace(/\s+/g, '');
        const r = VC.checkUscc(uscc.value);
        usccHint.textContent = r.message;
        usccHint.className = 'hint ' + (r.ok ? 'good' : r.partial ? '' : 'bad');
      });
      const form = h('form', { className: 'row-form', id: 'platform-form', noValidate: true },
        field('平台名称（企业可见）', name),
        h('label', { className: 'field' }, h('span', { className: 'label', text: '运营方统一社会信用代码' }), uscc, usccHint),
        h('button', { type: 'submit', className: 'primary', text: '登记平台并签发密钥' }));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        say(msg, '');
        if (!name.value.trim()) { say(msg, '请填写平台名称。', 'error'); name.focus(); return; }
        const r = VC.checkUscc(uscc.value);
        if (!r.ok) { say(msg, '统一社会信用代码：' + r.message, 'error'); uscc.focus(); return; }
        try {
          const created = await busy(form.querySelector('button'), '登记中…',
            () => api.post('/api/bureau/platforms', { name: name.value.trim(), uscc: uscc.value }));
          form.reset();
          usccHint.textContent = '';
          showKey('平台已登记，API 密钥', created.name, created.api_key);
          load();
        } catch (err) {
          say(msg, errorText(err, { already_registered: '这个平台（名称或统一社会信用代码）已经登记过了。' }), 'error');
        }
      });
      root.append(card('登记新平台', form));
    } else {
      root.append(roleNote('只有管理员可以登记平台、签发和吊销密钥；您可以查看。'));
    }
    root.append(card('已登记平台', list));
    load();
  }

  // ---- Program year parameters ---------------------------------------------------------------

  function renderProgram(root) {
    const msg = msgArea();
    const year = h('input', { type: 'number', id: 'program-year', min: 2021, max: 2100, value: VC.thisYear(), className: 'narrow' });
    const body = h('div', { className: 'program-years' });
    // This year and next year side by side: next year's is prepared in December.
    const load = async () => {
      say(msg, '');
      const first = Number(year.value);
      clear(body).append(h('p', { className: 'muted loading', text: '正在加载…' }));
      const boxes = [first, first + 1].map((y) => h('div', { className: 'program-year', id: 'program-' + y }));
      clear(body).append(...boxes);
      await Promise.all([first, first + 1].map(async (y, i) => {
        try {
          const p = await api.get('/api/bureau/programs/' + y);
          clear(boxes[i]).append(programView(p));
        } catch (err) {
          if (err.code === 'not_found' && y === VC.thisYear() + 1) clear(boxes[i]).append(prepareView(y));
          else clear(boxes[i]).append(card(y + ' 年度', h('p', { className: 'muted', text: err.code === 'not_found' ? '没有该年度的参数。' : errorText(err) })));
        }
      }));
    };

    // Next year, not yet created: the admin creates it with the rules module's defaults.
    const prepareView = (y) => {
      const create = h('button', { type: 'button', className: 'primary', id: 'prepare-year', text: '按政策默认值创建 ' + y + ' 年度参数', disabled: !can('editProgram') });
      create.addEventListener('click', async () => {
        say(msg, '');
        if (!await confirmDialog('创建 ' + y + ' 年度参数（补贴比例、每户上限和企业名额取当时生效政策的默认值）？创建后可以修改，直到该年度第一次申领。', '创建')) return;
        try {
          const p = await busy(create, '创建中…', () => api.request('PATCH', '/api/bureau/programs/' + y, {}));
          clear($('program-' + y)).append(programView(p));
          say(msg, y + ' 年度参数已创建，可以修改。', 'success');
        } catch (err) {
          say(msg, errorText(err), 'error');
        }
      });
      return card(y + ' 年度（下一年度）',
        h('p', { className: 'muted', text: '下一年度的参数尚未设置。提前创建并设置好，元旦开放申领时即按新参数执行。' }),
        can('editProgram') ? create : roleNote('只有管理员可以创建和修改年度参数。'));
    };

    const programView = (p) => {
      const rows = [
        ['年度', String(p.year)],
        ['补贴比例', Math.round(Number(p.rate) * 100) + '%（' + p.rate + '）'],
        ['每户年度补贴上限', money(p.cap_per_firm)],
        ['年度企业名额', VC.integer(p.firm_quota) + ' 家'],
        ['已入选企业', VC.integer(p.firms_admitted) + ' 家'],
        ['未使用失效天数', p.claim_validity_days + ' 天（领取后该天数内未使用即失效）'],
        ['核销截止', VC.dateTime(p.redeem_deadline) + '（北京时间）'],
        ['已发放', money(p.granted_total)],
        ['已核销', money(p.redeemed_total)],
        ['有效消费券', VC.integer(p.vouchers_active) + ' 张'],
      ];
      const next = p.year > VC.thisYear();
      const view = card(p.year + ' 年度参数' + (next ? '（下一年度，尚未开始）' : ''), h('dl', { className: 'kv' }, rows.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])));
      if (!can('editProgram')) return h('div', null, view, roleNote('只有管理员可以修改年度参数。'));

      const quota = h('input', { type: 'number', id: 'edit-quota-' + p.year, min: 0, step: 1, value: p.firm_quota });
      const cap = h('input', { id: 'edit-cap-' + p.year, inputMode: 'decimal', value: p.cap_per_firm });
      const days = h('input', { type: 'number', id: 'edit-days-' + p.year, min: 1, max: 366, step: 1, value: p.claim_validity_days });
      const form = h('form', { className: 'row-form', noValidate: true },
        field('年度企业名额', quota, '不能少于已入选的 ' + p.firms_admitted + ' 家'),
        field('每户年度补贴上限（元）', cap, '不能低于已发放给任何一家企业的金额'),
        field('未使用失效天数', days, '1–366 天，只影响今后领取的消费券'),
        h('button', { type: 'submit', className: 'primary', text: '保存修改' }));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        say(msg, '');
        const patch = {};
        if (Number(quota.value) !== p.firm_quota) patch.firm_quota = Number(quota.value);
        if (cap.value.trim() !== p.cap_per_firm) {
          if (!VC.isMoney(cap.value.trim())) { say(msg, '每户上限应为金额，最多两位小数。', 'error'); return; }
          patch.cap_per_firm = cap.value.trim();
        }
        if (Number(days.value) !== p.claim_validity_days) patch.claim_validity_days = Number(days.value);
        if (!Object.keys(patch).length) { say(msg, '没有需要保存的修改。', 'info'); return; }
        const ok = await confirmDialog('确定修改 ' + p.year + ' 年度参数吗？修改会记入审计日志。', '保存');
        if (!ok) return;
        try {
          const updated = await busy(form.querySelector('button'), '保存中…',
            () => api.request('PATCH', '/api/bureau/programs/' + p.year, patch));
          clear($('program-' + p.year)).append(programView(updated));
          say(msg, p.year + ' 年度参数已保存。', 'success');
        } catch (err) {
          say(msg, errorText(err, {
            invalid_transition: '不能这样修改：企业名额不能少于已入选的企业数（' + p.firms_admitted + ' 家），每户上限也不能低于已发放给任何一家企业的金额。',
          }), 'error');
        }
      });
      return h('div', null, view, card('修改 ' + p.year + ' 年度参数', form));
    };

    root.append(
      h('div', { className: 'page-head' }, h('h1', { text: '年度参数' }),
        h('form', { className: 'inline', on: { submit: (e) => { e.preventDefault(); load(); } } },
          field('从年度', year), h('button', { type: 'submit', className: 'ghost', text: '查看' }))),
      msg, body);
    load();
  }

  // ---- Settlement runs -----------------------------------------------------------------------

  function renderSettlement(root) {
    const msg = msgArea();
    const reportBox = h('div', { id: 'report-box' });
    const runs = h('div');
    const date = h('input', { type: 'date', id: 'run-date', value: VC.today(-1), max: VC.today() });
    const runBtn = h('button', { type: 'submit', className: 'primary', id: 'run-button', text: '运行对账', disabled: !can('runSettlement') });
    const viewBtn = h('button', { type: 'button', className: 'ghost', text: '查看该日报告' });

    const loadRuns = async () => {
      try {
        const list = await api.get('/api/bureau/settlement-runs');
        clear(runs).append(table([
          { label: '业务日期', cell: (r) => r.business_date },
          { label: '运行次数', cell: (r) => String(r.runs), className: 'num' },
          { label: '最近运行', cell: (r) => VC.dateTime(r.last_run_at) },
          { label: '结果', cell: (r) => r.ok ? badge('✓ 全部通过', 'ok') : badge('✗ 有不变量被破坏', 'bad') },
          { label: '', cell: (r) => h('button', { type: 'button', className: 'ghost small', text: '查看报告', on: { click: () => showReport(r.business_date) } }) },
        ], list, { empty: '还没有运行记录。', rowProps: (r) => ({ className: r.ok ? '' : 'broken' }) }));
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    };

    const showReport = async (d) => {
      say(msg, '');
      try {
        const report = await api.get('/api/bureau/settlement-runs/' + d);
        clear(reportBox).append(reportView(report));
        reportBox.scrollIntoView({ block: 'start' });
      } catch (err) {
        clear(reportBox);
        say(msg, err.code === 'not_found' ? d + ' 还没有对账记录。' : errorText(err), 'error');
      }
    };

    const form = h('form', { className: 'row-form', noValidate: true },
      field('业务日期（北京时间）', date, '可以重复运行，结果相同，不会重复处理'), runBtn, viewBtn);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      say(msg, '');
      try {
        const report = await busy(runBtn, '运行中…', () => api.post('/api/bureau/settlement-runs', { business_date: date.value }));
        clear(reportBox).append(reportView(report));
        const broken = report.invariants.filter((i) => !i.ok).length;
        say(msg, broken
          ? date.value + ' 的对账已运行，但有 ' + broken + ' 项不变量被破坏，详见下方报告。'
          : date.value + ' 的对账已完成，全部不变量成立。', broken ? 'error' : 'success');
        loadRuns();
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    });
    viewBtn.addEventListener('click', () => showReport(date.value));

    root.append(h('div', { className: 'page-head' }, h('h1', { text: '日终对账' })), msg,
      card('运行对账', form, can('runSettlement') ? null : roleNote('只有管理员和审核员可以运行对账；您可以查看报告。')),
      reportBox, card('运行记录（最近 100 个业务日）', runs));
    loadRuns();
  }

  function reportView(r) {
    const broken = r.invariants.filter((i) => !i.ok);
    const figures = [
      ['核销笔数', VC.integer(r.redemptions)], ['核销抵扣金额', money(r.discount_total)],
      ['撤销笔数', VC.integer(r.reversals)], ['撤销金额', money(r.reversed_total)],
      ['逾期未用失效', VC.integer(r.lapsed_vouchers) + ' 张'], ['过截止期作废', VC.integer(r.expired_vouchers) + ' 张'],
      ['释放名额', VC.integer(r.released_slots) + ' 个'], ['生成结算单', VC.integer(r.statements_created) + ' 张'],
    ];
    return h('section', { className: 'card report' + (broken.length ? ' report-broken' : '') },
      h('h2', { text: r.business_date + ' 对账报告' }),
      broken.length
        ? h('div', { className: 'alert-banner', attrs: { role: 'alert' } },
          h('strong', { text: '✗ 对账发现 ' + broken.length + ' 项不变量被破坏，请立即核查！' }),
          h('ul', null, broken.map((i) => h('li', { text: (INVARIANTS[i.name] || i.name) + '：' + invariantDetail(i.detail) }))))
        : h('div', { className: 'ok-banner', text: '✓ 全部 ' + r.invariants.length + ' 项不变量均成立。' }),
      h('div', { className: 'mini-figures' }, figures.map(([k, v]) => h('div', null, h('span', { text: k }), h('strong', { text: v })))),
      table([
        { label: '结果', cell: (i) => i.ok ? badge('✓ 成立', 'ok') : badge('✗ 被破坏', 'bad') },
        { label: '不变量', cell: (i) => h('span', null, INVARIANTS[i.name] || i.name, h('span', { className: 'muted small mono', text: ' ' + i.name })) },
        { label: '详情', cell: (i) => invariantDetail(i.detail) },
      ], r.invariants, { rowProps: (i) => ({ className: i.ok ? '' : 'broken' }) }));
  }

  // ---- Monthly statements --------------------------------------------------------------------

  function renderStatements(root) {
    const msg = msgArea();
    const month = h('input', { type: 'month', id: 'statement-month', value: VC.thisMonth(), max: VC.thisMonth() });
    const list = h('div', { id: 'statement-list' });
    const closeBtn = h('button', { type: 'button', className: 'primary', id: 'close-month', text: '关账：生成 / 刷新该月结算单', disabled: !can('closeMonth') });

    const load = async () => {
      if (!/^\d{4}-\d{2}$/.test(month.value)) { say(msg, '请选择月份。', 'error'); return; }
      try {
        const statements = await api.get('/api/bureau/statements?month=' + month.value);
        clear(list).append(statementTable(statements));
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    };

    closeBtn.addEventListener('click', async () => {
      say(msg, '');
      if (month.value >= VC.thisMonth() && !await confirmDialog('⚠ ' + month.value + ' 还没有结束。现在关账生成的是截至此刻的草稿结算单，本月后续的核销会在下次关账时刷新进来。确定现在关账吗？', '仍然关账')) return;
      try {
        const statements = await busy(closeBtn, '关账中…', () => api.post('/api/bureau/statements', { month: month.value }));
        clear(list).append(statementTable(statements));
        say(msg, month.value + ' 已关账：' + statements.length + ' 张结算单（草稿会随每次关账刷新，审核后冻结）。', 'success');
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    });

    const act = async (button, busyText, fn, done) => {
      say(msg, '');
      try {
        await busy(button, busyText, fn);
        say(msg, done, 'success');
        await load();
      } catch (err) {
        say(msg, errorText(err, {
          invalid_transition: '结算单当前的状态不允许这项操作：须先审核（草稿 → 已审核），再付款（已审核 → 已付款）。',
        }), 'error');
      }
    };

    const exportFile = async (s, ext, button) => {
      say(msg, '');
      try {
        const blob = await busy(button, '导出中…', () => api.blob('/api/bureau/statements/' + s.id + '/lines.' + ext));
        VC.download(blob, 'statement-' + s.month + '-' + s.platform_uscc + '.' + ext);
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    };

    const actions = (s) => {
      const box = h('div', { className: 'actions-cell' });
      if (s.status === 'draft') {
        if (can('approvePay')) {
          box.append(h('button', {
            type: 'button', className: 'primary small approve', text: '审核通过',
            on: {
              click: async (e) => {
                const btn = e.currentTarget;
                const early = s.month >= VC.thisMonth();
                if (!await confirmDialog((early ? '⚠ 注意：' + s.month + ' 还没有结束，审核后本月之后的核销将计入下个月。\n\n' : '') +
                  '审核通过「' + s.platform_name + '」' + s.month + ' 月的结算单：' + s.lines.length + ' 笔，应付平台 ' + money(s.total) + '。审核后该月核销被锁定，平台不能再撤销。', '审核通过 ' + money(s.total))) return;
                act(btn, '审核中…', () => api.post('/api/bureau/statements/' + s.id + '/approve'), '结算单已审核。');
              },
            },
          }));
        } else {
          box.append(h('span', { className: 'muted small', text: '待财务审核' }));
        }
      } else if (s.status === 'approved') {
        if (can('approvePay') && s.approved_by === 'staff:' + session.name) {
          box.append(h('span', { className: 'muted small four-eyes', text: '由您审核：付款须由另一位财务同事登记' }));
        } else if (can('approvePay')) {
          const ref = h('input', { className: 'ref-input', placeholder: '付款凭证号', maxLength: 100 });
          const pay = h('button', { type: 'button', className: 'primary small pay', text: '确认付款' });
          pay.addEventListener('click', async () => {
            const reference = ref.value.trim();
            if (!reference) { say(msg, '请填写付款凭证号（银行或国库支付的流水号）。', 'error'); ref.focus(); return; }
            if (!await confirmDialog('确认已向「' + s.platform_name + '」支付 ' + s.month + ' 月结算款 ' + money(s.total) + '，付款凭证号 ' + reference + '？登记后不能修改。', '确认付款 ' + money(s.total))) return;
            act(pay, '记录中…', () => api.post('/api/bureau/statements/' + s.id + '/payment', { reference: reference }),
              '已记录付款，凭证号 ' + reference + '。');
          });
          box.append(h('span', { className: 'pay-row' }, ref, pay));
        } else {
          box.append(h('span', { className: 'muted small', text: '待财务付款' }));
        }
      }
      const csv = h('button', { type: 'button', className: 'ghost small', text: '导出 CSV' });
      csv.addEventListener('click', () => exportFile(s, 'csv', csv));
      const xlsx = h('button', { type: 'button', className: 'ghost small', text: '导出 XLSX' });
      xlsx.addEventListener('click', () => exportFile(s, 'xlsx', xlsx));
      box.append(h('span', { className: 'export-row' }, csv, xlsx));
      return box;
    };

    const open = new Set();
    const statementTable = (statements) => table([
      { label: '平台', cell: (s) => h('div', null, h('strong', { text: s.platform_name }), h('div', { className: 'muted small mono', text: s.platform_uscc })) },
      { label: '月份', cell: (s) => s.month },
      { label: '状态', cell: (s) => { const [t, k] = STATEMENT_STATUS[s.status] || [s.status, 'muted']; return badge(t, k + ' status'); } },
      {
        label: '明细', cell: (s) => h('button', {
          type: 'button', className: 'link small', text: s.lines.length + ' 笔 ' + (open.has(s.id) ? '▲' : '▼'),
          on: { click: () => { if (open.has(s.id)) open.delete(s.id); else open.add(s.id); clear(list).append(statementTable(statements)); } },
        }),
      },
      { label: '合计（应付平台）', cell: (s) => h('strong', { className: 'total', text: money(s.total) }), className: 'num' },
      { label: '审核', cell: (s) => s.approved_at ? h('div', null, VC.dateTime(s.approved_at), h('div', { className: 'small muted', text: s.approved_by ? '审核人 ' + s.approved_by.replace(/^staff:/, '') : '' })) : '—' },
      { label: '付款', cell: (s) => s.paid_at ? h('div', null, VC.dateTime(s.paid_at), h('div', { className: 'small mono', text: '凭证 ' + (s.payment_reference || '') })) : '—' },
      { label: '操作', cell: actions },
    ], statements, {
      empty: '该月还没有结算单。关账后，每个有核销的平台生成一张。',
      rowProps: (s) => ({ dataset: { statementId: s.id, status: s.status } }),
      after: (s, n) => open.has(s.id)
        ? h('tr', { className: 'lines-row' }, h('td', { colSpan: n }, table([
          { label: '发票号', cell: (l) => l.invoice_no },
          { label: '券码', cell: (l) => h('span', { className: 'mono', text: l.voucher_code }) },
          { label: '企业', cell: (l) => l.firm_name + '（' + l.firm_uscc + '）' },
          { label: '账单金额', cell: (l) => money(l.bill_amount), className: 'num' },
          { label: '抵扣（报销）', cell: (l) => money(l.discount), className: 'num' },
          { label: '合同 / 账期', cell: (l) => [l.contract_no, l.billing_period].filter(Boolean).join(' / ') || '—' },
          { label: '核销时间', cell: (l) => VC.dateTime(l.created_at) },
        ], s.lines, { className: 'inner' })))
        : null,
    });

    const summary = (ext) => {
      const b = h('button', { type: 'button', className: 'ghost', id: 'summary-' + ext, text: '月度汇总 ' + ext.toUpperCase() });
      b.addEventListener('click', async () => {
        say(msg, '');
        try {
          const blob = await busy(b, '导出中…', () => api.blob('/api/bureau/statements/summary.' + ext + '?month=' + month.value));
          VC.download(blob, 'statements-' + month.value + '-summary.' + ext);
        } catch (err) {
          say(msg, errorText(err), 'error');
        }
      });
      return b;
    };
    const form = h('form', { className: 'row-form', noValidate: true, on: { submit: (e) => { e.preventDefault(); say(msg, ''); load(); } } },
      field('月份（北京时间）', month), h('button', { type: 'submit', className: 'ghost', text: '查询' }), closeBtn, summary('xlsx'), summary('csv'));
    root.append(h('div', { className: 'page-head' }, h('h1', { text: '月度结算' })), msg,
      card(null, form,
        can('approvePay') ? null : roleNote('结算单的审核和付款只能由财务完成（职责分离）；您可以关账、查看和导出。')),
      card('结算单', list));
    load();
  }

  // ---- Audit log -----------------------------------------------------------------------------

  function renderAudit(root) {
    const msg = msgArea();
    const verifyBox = h('div', { id: 'audit-verify' });
    const list = h('div');
    const PAGE = 50;
    const stack = []; // the `after` of each page shown before this one
    let after = 0;
    let total = 0; // entries counted by the last verification (sealed + pending)
    let flagged = new Set(); // seqs the last verification found edited

    // The last page: from the verification's count (seqs can have gaps, so walk on from there).
    const jumpToEnd = async (button) => {
      try {
        await busy(button, '查找中…', async () => {
          const start = Math.max(after, total - PAGE);
          if (start > after) { stack.push(after); after = start; }
          for (;;) {
            const page = await api.get('/api/bureau/audit?after=' + after + '&limit=' + PAGE);
            if (page.length < PAGE) break;
            const last = page[page.length - 1].seq;
            const more = await api.get('/api/bureau/audit?after=' + last + '&limit=1');
            if (!more.length) break;
            stack.push(after);
            after = last;
          }
        });
        await load();
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    };

    const verify = async () => {
      clear(verifyBox).append(h('p', { className: 'muted', text: '正在校验审计链…' }));
      try {
        const v = await api.get('/api/bureau/audit/verify');
        total = v.entries + v.pending;
        flagged = new Set(v.findings.map((f) => f.seq).filter((x) => x !== null && x !== undefined));
        if (flagged.size) load();
        clear(verifyBox).append(v.ok
          ? h('div', { className: 'ok-banner', id: 'audit-ok', text: '✓ 审计链完整：已校验 ' + VC.integer(v.entries) + ' 条记录，未发现篡改或删除' +
            (v.pending ? '（另有 ' + v.pending + ' 条刚写入、待封存，几秒后会纳入校验）' : '') + '。' })
          : h('div', { className: 'alert-banner', id: 'audit-broken', attrs: { role: 'alert' } },
            h('strong', { text: '✗ 审计链校验失败：发现 ' + v.findings.length + ' 处问题，记录可能被篡改或删除！' }),
            h('ul', null, v.findings.map((f) => h('li', {
              text: '链位置 ' + f.pos + (f.seq !== null && f.seq !== undefined ? '（序号 ' + f.seq + '）' : '') + '：' +
                (f.problem === 'removed' ? '被删除' : f.problem === 'edited' ? '被修改' : f.problem) + ' — ' + f.detail,
            })))));
      } catch (err) {
        clear(verifyBox).append(h('p', { className: 'msg error', text: errorText(err) }));
      }
    };

    const load = async () => {
      try {
        const entries = await api.get('/api/bureau/audit?after=' + after + '&limit=' + PAGE);
        clear(list).append(
          table([
            { label: '序号', cell: (e) => String(e.seq), className: 'num' },
            { label: '时间', cell: (e) => VC.dateTime(e.at) },
            { label: '操作人', cell: (e) => h('span', { className: 'mono small', text: e.actor }) },
            { label: '动作', cell: (e) => h('span', null, ACTIONS[e.action] || e.action, h('div', { className: 'muted small mono', text: e.action })) },
            { label: '对象', cell: (e) => h('span', { className: 'mono small', text: e.subject || '—' }) },
            { label: '详情', cell: (e) => detailCell(e.detail) },
            { label: '链位置', cell: (e) => e.chain_pos === null || e.chain_pos === undefined ? badge('待封存', 'muted') : String(e.chain_pos), className: 'num' },
          ], entries, { empty: '没有更多记录。', className: 'audit', rowProps: (e) => ({ className: flagged.has(e.seq) ? 'broken' : '' }) }),
          h('div', { className: 'pager' },
            h('button', { type: 'button', className: 'ghost small', text: '« 第一页', disabled: !stack.length, on: { click: () => { stack.length = 0; after = 0; load(); } } }),
            h('button', { type: 'button', className: 'ghost small', text: '‹ 上一页', disabled: !stack.length, on: { click: () => { after = stack.pop(); load(); } } }),
            h('span', { className: 'muted small', text: entries.length ? '序号 ' + entries[0].seq + '–' + entries[entries.length - 1].seq : '' }),
            h('button', {
              type: 'button', className: 'ghost small', text: '下一页 ›', disabled: entries.length < PAGE,
              on: { click: () => { stack.push(after); after = entries[entries.length - 1].seq; load(); } },
            }),
            h('button', { type: 'button', className: 'ghost small', text: '最新 »', disabled: entries.length < PAGE, on: { click: (e) => jumpToEnd(e.currentTarget) } })));
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    };

    root.append(h('div', { className: 'page-head' }, h('h1', { text: '审计日志' }),
      h('button', { type: 'button', className: 'ghost', text: '重新校验', on: { click: verify } })),
    msg, verifyBox, card('记录（按写入顺序，每页 ' + PAGE + ' 条）', list));
    verify();
    load();
  }

  function detailCell(detail) {
    if (detail === null || detail === undefined) return '—';
    const text = typeof detail === 'string' ? detail : JSON.stringify(detail);
    const short = text.length > 140 ? text.slice(0, 140) + '…' : text;
    return h('code', { className: 'detail', title: text, text: short });
  }

  // ---- Rules evaluation ----------------------------------------------------------------------

  function renderRules(root) {
    const msg = msgArea();
    const date = h('input', { type: 'date', id: 'rules-date', value: VC.today() });
    const measure = h('select', { id: 'rules-measure' });
    const factsBox = h('div', { id: 'rules-facts-box' });
    const clauseNote = h('p', { className: 'muted small', id: 'rules-clause' });
    const result = h('div', { id: 'rules-result' });
    let measures = [];
    let facts = null;

    // The form of the measure's facts, each with its Chinese name, type and unit.
    const template = () => {
      facts = factsForm(measure.value, 'rules');
      clear(factsBox).append(facts.node);
      const m = measures.find((x) => x.id === measure.value);
      clauseNote.textContent = m ? '条款 ' + m.clause + '「' + m.title + '」' +
        (m.annual_quota !== null && m.annual_quota !== undefined ? '，每年最多 ' + m.annual_quota + ' 项' : '，不限名额') : '';
      clear(result);
    };

    const loadMeasures = async () => {
      say(msg, '');
      const keep = measure.value;
      try {
        measures = await api.get('/api/rules/measures?date=' + date.value);
        VC.append(clear(measure), measures.map((m) => h('option', {
          value: m.id, text: m.clause + ' ' + m.title + (m.annual_quota !== null && m.annual_quota !== undefined ? '（每年 ' + m.annual_quota + ' 个）' : ''),
        })));
        if (!measures.length) measure.append(h('option', { value: '', text: '该日期没有生效的政策条款' }));
        if (measures.some((m) => m.id === keep)) measure.value = keep;
        else if (measures.some((m) => m.id === 'cloud_voucher')) measure.value = 'cloud_voucher';
        template();
      } catch (err) {
        clear(measure).append(h('option', { value: '', text: '—' }));
        clear(factsBox);
        say(msg, rulesErrorText(err, date.value), 'error');
      }
    };

    const form = h('form', { className: 'rules-form', noValidate: true },
      h('div', { className: 'row-form' }, field('评估日期（决定适用的政策版本）', date), field('政策条款', measure)),
      clauseNote,
      h('h3', { text: '申请人情况' }),
      factsBox,
      h('div', { className: 'row-form' },
        h('button', { type: 'submit', className: 'primary', id: 'evaluate', text: '计算' }),
        h('button', { type: 'button', className: 'ghost', text: '恢复示例数据', on: { click: template } })));
    date.addEventListener('change', loadMeasures);
    measure.addEventListener('change', template);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      say(msg, '');
      let parsed;
      try {
        parsed = facts.read();
      } catch (e) {
        say(msg, e.message, 'error');
        return;
      }
      try {
        const r = await busy(form.querySelector('#evaluate'), '计算中…',
          () => api.post('/api/rules/evaluate', { measure: measure.value, date: date.value, facts: parsed }));
        clear(result).append(evaluationView(r));
      } catch (err) {
        clear(result);
        say(msg, rulesErrorText(err, date.value), 'error');
      }
    });

    root.append(h('div', { className: 'page-head' }, h('h1', { text: '政策计算' })), msg,
      card('按政策条款评估（不做登记）', form), result);
    loadMeasures();
  }

  function evaluationView(r) {
    const m = r.measure;
    return card('评估结果',
      h('div', { className: 'eval-head' },
        h('div', { className: 'figure' }, h('div', { className: 'figure-label', text: '是否符合条件' }),
          h('div', { className: 'figure-value ' + (r.eligible ? 'good' : 'bad'), id: 'eval-eligible', text: r.eligible ? '✓ 符合' : '✗ 不符合' })),
        h('div', { className: 'figure' }, h('div', { className: 'figure-label', text: '奖励 / 补贴金额' }),
          h('div', { className: 'figure-value', id: 'eval-award', text: money(r.award) })),
        h('div', { className: 'figure' }, h('div', { className: 'figure-label', text: '政策版本' }),
          h('div', { className: 'figure-value small-value', text: r.policy_version === 'revised' ? '修订版' : r.policy_version + ' 版' })),
        h('div', { className: 'figure' }, h('div', { className: 'figure-label', text: '年度名额' }),
          h('div', { className: 'figure-value small-value', text: r.annual_quota === null || r.annual_quota === undefined ? '不限' : r.annual_quota + ' 个' }))),
      h('p', { className: 'muted small mono', text: '条款 ' + m + ' · 参数文件 sha256 ' + r.params_hash }),
      h('h3', { text: '计算过程' }),
      table([
        { label: '#', cell: (t) => String(r.trace.indexOf(t) + 1), className: 'num' },
        { label: '条款', cell: (t) => t.clause },
        { label: '步骤', cell: (t) => zhTrace(t.step) },
        { label: '数值与结论', cell: (t) => zhTrace(t.value) },
      ], r.trace, { className: 'trace' }));
  }

  // ---- Daily look-ups: vouchers, redemptions, awards -------------------------------------------

  const VOUCHER_STATUS = {
    active: ['可使用', 'ok'],
    exhausted: ['已用完', 'muted'],
    cancelled: ['已取消', 'muted'],
    lapsed: ['逾期未用失效', 'warn'],
    expired: ['已过期', 'bad'],
  };

  const REDEMPTION_STATUS = { active: ['有效', 'ok'], reversed: ['已撤销', 'bad'] };

  function statusBadge(map, status) {
    const [t, k] = map[status] || [status, 'muted'];
    return badge(t, k);
  }

  // The hash's own query (#/vouchers?q=BA26-...), as URLSearchParams.
  function hashParams() {
    const i = location.hash.indexOf('?');
    return new URLSearchParams(i < 0 ? '' : location.hash.slice(i + 1));
  }

  // Fetches a paged list: resolves with {rows, next} (next: the Link rel="next" URL or null).
  async function getPage(url) {
    const res = await api.get(url, { raw: true });
    const rows = await res.json();
    const link = res.headers.get('Link');
    const m = link && link.match(/<([^>]+)>;\s*rel="next"/);
    return { rows: rows, next: m ? m[1] : null };
  }

  // A list with a pager: `url()` gives the first page's URL; `render(rows)` a node.
  function pagedList(box, msg, render) {
    const stack = [];
    let current = null;
    const show = async (url) => {
      clear(box).append(h('p', { className: 'muted loading', text: '正在查询…' }));
      try {
        const page = await getPage(url);
        current = url;
        clear(box).append(render(page.rows),
          h('div', { className: 'pager' },
            h('button', { type: 'button', className: 'ghost small', text: '‹ 上一页', disabled: !stack.length, on: { click: () => show(stack.pop()) } }),
            h('span', { className: 'muted small', text: page.rows.length ? '本页 ' + page.rows.length + ' 条' : '' }),
            h('button', { type: 'button', className: 'ghost small', id: 'next-page', text: '下一页 ›', disabled: !page.next, on: { click: () => { stack.push(current); show(page.next); } } })));
      } catch (err) {
        clear(box);
        say(msg, errorText(err), 'error');
      }
    };
    return { first: (url) => { stack.length = 0; say(msg, ''); return show(url); } };
  }

  async function exportCsv(button, msg, url, name) {
    say(msg, '');
    try {
      const blob = await busy(button, '导出中…', () => api.blob(url));
      VC.download(blob, name);
    } catch (err) {
      say(msg, errorText(err, { validation_failed: '符合条件的记录超过 10 万条，请缩小查询范围后再导出。' }), 'error');
    }
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
    return q.toString();
  }

  const PAGE_SIZE = 50;

  function redemptionTable(rows, opts) {
    opts = opts || {};
    return table([
      { label: '核销时间', cell: (r) => VC.dateTime(r.created_at) },
      opts.noPlatform ? null : { label: '平台', cell: (r) => r.platform_name },
      opts.noFirm ? null : { label: '企业', cell: (r) => h('div', null, r.firm_name, h('div', { className: 'muted small mono', text: r.firm_uscc })) },
      opts.noVoucher ? null : { label: '券码', cell: (r) => h('a', { className: 'mono', href: '#/vouchers?q=' + encodeURIComponent(r.voucher_code), text: r.voucher_code }) },
      { label: '发票号', cell: (r) => h('span', { className: 'mono', text: r.invoice_no }) },
      { label: '合同 / 账期', cell: (r) => [r.contract_no, r.billing_period].filter(Boolean).join(' / ') || '—' },
      { label: '账单金额', cell: (r) => money(r.bill_amount), className: 'num' },
      { label: '抵扣金额', cell: (r) => money(r.discount), className: 'num' },
      { label: '状态', cell: (r) => h('div', null, statusBadge(REDEMPTION_STATUS, r.status),
        r.reversed_at ? h('div', { className: 'small muted', text: VC.dateTime(r.reversed_at) + (r.reversal_reason ? '：' + r.reversal_reason : '') }) : null) },
    ].filter(Boolean), rows, {
      empty: opts.empty || '没有符合条件的核销记录。', className: 'redemptions',
      rowProps: (r) => ({ className: r.status === 'reversed' ? 'reversed' : '', dataset: { invoice: r.invoice_no } }),
    });
  }

  function renderVouchers(root) {
    const msg = msgArea();
    const params = hashParams();
    const q = h('input', { id: 'voucher-q', autocomplete: 'off', className: 'mono', placeholder: '券码（如 BA26-XXXX-XXXX）或统一社会信用代码', value: params.get('q') || '' });
    const status = h('select', { id: 'voucher-status' }, h('option', { value: '', text: '全部状态' }),
      Object.entries(VOUCHER_STATUS).map(([k, [t]]) => h('option', { value: k, text: t })));
    const year = h('input', { type: 'number', id: 'voucher-year', min: 2021, max: 2100, className: 'narrow', value: params.get('year') || '' , placeholder: '全部' });
    const list = h('div', { id: 'voucher-results' });
    const detail = h('div', { id: 'voucher-detail' });
    const csvBtn = h('button', { type: 'button', className: 'ghost', id: 'voucher-csv', text: '导出 CSV（当前条件）' });
    const filter = () => {
      const text = q.value.trim().toUpperCase();
      return { q: text, status: status.value, year: year.value };
    };
    const pager = pagedList(list, msg, (rows) => {
      if (rows.length === 1 && filter().q) openDetail(rows[0].id);
      return table([
        { label: '券码', cell: (v) => h('button', { type: 'button', className: 'link mono voucher-open', text: v.code, on: { click: () => openDetail(v.id) } }) },
        { label: '企业', cell: (v) => h('div', null, v.firm_name, h('div', { className: 'muted small mono', text: v.firm_uscc })) },
        { label: '平台', cell: (v) => v.platform_name },
        { label: '年度', cell: (v) => String(v.year) },
        { label: '面额', cell: (v) => money(v.face_value), className: 'num' },
        { label: '余额', cell: (v) => money(v.remaining), className: 'num' },
        { label: '状态', cell: (v) => statusBadge(VOUCHER_STATUS, v.status) },
        { label: '发放时间', cell: (v) => VC.dateTime(v.issued_at) },
      ], rows, { empty: '没有找到符合条件的消费券。', rowProps: (v) => ({ dataset: { voucherId: v.id, code: v.code } }) });
    });
    const search = () => {
      const f = filter();
      if (f.q && f.q.length < 4) { say(msg, '请至少输入券码或统一社会信用代码的前 4 位。', 'error'); return; }
      clear(detail);
      pager.first('/api/bureau/vouchers?' + query(Object.assign({ limit: PAGE_SIZE }, f)));
    };
    const openDetail = async (id) => {
      clear(detail).append(h('p', { className: 'muted loading', text: '正在加载消费券详情…' }));
      try {
        const v = await api.get('/api/bureau/vouchers/' + id);
        clear(detail).append(card('消费券 ' + v.code,
          h('dl', { className: 'kv' }, [
            ['券码', v.code], ['状态', (VOUCHER_STATUS[v.status] || [v.status])[0]],
            ['企业', v.firm_name + '（' + v.firm_uscc + '）'], ['平台', v.platform_name],
            ['年服务费', money(v.annual_fee)], ['面额', money(v.face_value)], ['已核销', money(v.redeemed)], ['余额', money(v.remaining)],
            ['发放时间', VC.dateTime(v.issued_at)],
            ['未使用失效时间', v.redemptions.length ? '—（已使用，不会失效）' : VC.dateTime(v.lapses_at)], ['核销截止', VC.dateTime(v.expires_at)],
            ['关闭时间', v.closed_at ? VC.dateTime(v.closed_at) : '—'],
          ].map(([k, val]) => [h('dt', { text: k }), h('dd', { text: val })])),
          h('h3', { text: '核销记录（' + v.redemptions.length + ' 笔，最新在前）' }),
          redemptionTable(v.redemptions, { noVoucher: true, noFirm: true, empty: '这张消费券还没有核销记录。' })));
        detail.scrollIntoView({ block: 'nearest' });
      } catch (err) {
        clear(detail);
        say(msg, errorText(err), 'error');
      }
    };
    csvBtn.addEventListener('click', () => exportCsv(csvBtn, msg, '/api/bureau/vouchers.csv?' + query(filter()), 'vouchers.csv'));
    const form = h('form', { className: 'row-form', id: 'voucher-search', noValidate: true, on: { submit: (e) => { e.preventDefault(); search(); } } },
      field('券码或统一社会信用代码', q, '热线查询：输入券码或企业代码（至少前 4 位）'), field('状态', status), field('年度', year),
      h('button', { type: 'submit', className: 'primary', text: '查询' }), csvBtn);
    root.append(h('div', { className: 'page-head' }, h('h1', { text: '消费券查询' })), msg,
      card(null, form), card('查询结果', list), detail);
    search();
  }

  function renderRedemptions(root) {
    const msg = msgArea();
    const month = h('input', { type: 'month', id: 'redemption-month', value: hashParams().get('month') || VC.thisMonth(), max: VC.thisMonth() });
    const platform = h('select', { id: 'redemption-platform' }, h('option', { value: '', text: '全部平台' }));
    const firm = h('input', { id: 'redemption-firm', autocomplete: 'off', className: 'mono', maxLength: 18, placeholder: '企业统一社会信用代码（可不填）' });
    const status = h('select', { id: 'redemption-status' }, h('option', { value: '', text: '全部' }),
      Object.entries(REDEMPTION_STATUS).map(([k, [t]]) => h('option', { value: k, text: t })));
    const list = h('div', { id: 'redemption-results' });
    const csvBtn = h('button', { type: 'button', className: 'ghost', id: 'redemption-csv', text: '导出 CSV（当前条件）' });
    const pager = pagedList(list, msg, (rows) => redemptionTable(rows));
    // The firm filter takes the USCC the caller reads out; the API takes the firm's id.
    const filter = async () => {
      const f = { month: month.value, platform_id: platform.value, status: status.value };
      const uscc = firm.value.trim().toUpperCase();
      if (uscc) {
        const check = VC.checkUscc(uscc);
        if (!check.ok) throw new Error('统一社会信用代码：' + check.message);
        const found = await api.get('/api/bureau/vouchers?' + query({ q: uscc, limit: 1 }));
        if (!found.length || found[0].firm_uscc !== uscc) throw new Error('这家企业没有领取过消费券，因此没有核销记录。');
        f.firm_id = found[0].firm_id;
      }
      return f;
    };
    const run = async (fn) => {
      say(msg, '');
      try {
        await fn(await filter());
      } catch (err) {
        say(msg, err instanceof VC.ApiError ? errorText(err) : err.message, 'error');
      }
    };
    const search = () => run((f) => pager.first('/api/bureau/redemptions?' + query(Object.assign({ limit: PAGE_SIZE }, f))));
    csvBtn.addEventListener('click', () => run((f) => exportCsv(csvBtn, msg, '/api/bureau/redemptions.csv?' + query(f), 'redemptions-' + (f.month || 'all') + '.csv')));
    const form = h('form', { className: 'row-form', id: 'redemption-search', noValidate: true, on: { submit: (e) => { e.preventDefault(); search(); } } },
      field('月份', month), field('平台', platform), field('企业', firm), field('状态', status),
      h('button', { type: 'submit', className: 'primary', text: '查询' }), csvBtn);
    root.append(h('div', { className: 'page-head' }, h('h1', { text: '核销查询' })), msg, card(null, form), card('核销记录（最新在前）', list));
    api.get('/api/bureau/platforms').then((ps) => {
      for (const p of ps) platform.append(h('option', { value: p.id, text: p.name }));
    }).catch((err) => say(msg, errorText(err), 'error'));
    search();
  }

  // ---- Facts of the rules module's measures, as form fields ------------------------------------

  // name → [label, type, unit or choices]; types: money, count, flag, rate, choice.
  const FACTS = {
    level: ['认定级别', 'choice', { national: '国家级', provincial: '省级', municipal: '市级' }],
    higher_level_funding: ['上级资助金额', 'money', '元'],
    total_investment: ['项目总投资', 'money', '元'],
    government_funding_received: ['已获各级财政资助（不含本次）', 'money', '元'],
    international_standards: ['主导制定的国际标准', 'count', '项'],
    national_standards: ['主导制定的国家标准', 'count', '项'],
    industry_standards: ['主导制定的行业标准', 'count', '项'],
    actual_investment: ['项目实际投资', 'money', '元'],
    annual_new_registrations: ['年新增标识注册量', 'count', '个'],
    monthly_avg_resolutions: ['月均标识解析量', 'count', '次'],
    superior_funding: ['上级资金支持', 'money', '元'],
    annual_transaction_volume: ['平台年交易额', 'money', '元'],
    customers: ['服务客户数', 'count', '家'],
    platform_service_revenue: ['平台服务收入', 'money', '元'],
    revenue: ['营业收入', 'money', '元'],
    miit_certified: ['获工信部认定为双跨平台', 'flag'],
    relocated_to_baoan: ['已迁入宝安区', 'flag'],
    operates_cross_industry_in_baoan: ['在宝安区开展双跨平台业务', 'flag'],
    annual_revenue: ['年营业收入', 'money', '元'],
    has_simulated_line: ['建有模拟产线', 'flag'],
    has_validation_capability: ['具备测试验证能力', 'flag'],
    has_showcase: ['建有展示体验中心', 'flag'],
    national_key_lab: ['依托国家重点实验室', 'flag'],
    selected: ['已入选', 'flag'],
    annual_fee: ['平台年服务费', 'money', '元'],
    granted_this_year: ['本年度已获消费券', 'money', '元'],
    registrations: ['标识注册量', 'count', '个'],
    equipment_investment: ['年度设备投资', 'money', '元'],
    subsidy_rate: ['评审确定的补贴比例', 'rate', '0.10–0.30'],
    local_equipment_investment: ['其中购买本地设备', 'money', '元'],
    lead_unit: ['为牵头单位', 'flag'],
    accepted_level: ['验收级别', 'choice', { national: '国家级', provincial: '省级', none: '未通过验收' }],
    guide_fund_investment: ['引导基金投资额', 'money', '元'],
    equity_investment: ['获得的股权投资额', 'money', '元'],
    facilitated_financing: ['促成的融资额', 'money', '元'],
    recognized: ['已认定为实训基地', 'flag'],
    approved_amount: ['核定金额', 'money', '元'],
    passed_assessment: ['通过考核评估', 'flag'],
    previously_awarded: ['曾获本项支持', 'flag'],
  };

  const FACT_HINT = {
    money: '金额，最多两位小数',
    count: '非负整数',
    rate: '小数，如 0.20',
    flag: '',
    choice: '',
  };

  function factLabel(name) {
    return FACTS[name] ? FACTS[name][0] : name;
  }

  // A form of `measure`'s facts: {node, read()}; read() returns the facts object or throws an
  // Error with a Chinese sentence naming the field. `skip` lists facts not asked for.
  function factsForm(measure, prefix, skip) {
    const example = FACT_EXAMPLES[measure] || {};
    const inputs = {};
    const fields = [];
    for (const name of Object.keys(example)) {
      if (skip && skip.includes(name)) continue;
      const [label, type, unit] = FACTS[name] || [name, typeof example[name] === 'boolean' ? 'flag' : 'money', ''];
      const id = prefix + '-fact-' + name;
      let input;
      if (type === 'flag') {
        input = h('input', { type: 'checkbox', id: id, checked: !!example[name], dataset: { fact: name } });
        fields.push(h('label', { className: 'field check' }, input, h('span', { className: 'label', text: label })));
      } else if (type === 'choice') {
        input = h('select', { id: id, dataset: { fact: name } }, Object.entries(unit).map(([v, t]) => h('option', { value: v, text: t, selected: v === example[name] })));
        fields.push(field(label, input));
      } else {
        input = h('input', { id: id, inputMode: type === 'count' ? 'numeric' : 'decimal', autocomplete: 'off', value: String(example[name]), dataset: { fact: name } });
        fields.push(field(label + (unit ? '（' + unit + '）' : ''), input, FACT_HINT[type]));
      }
      inputs[name] = [input, type, label];
    }
    const read = () => {
      const facts = {};
      for (const [name, [input, type, label]] of Object.entries(inputs)) {
        const raw = input.value === undefined ? '' : String(input.value).replace(/[,，\s¥￥]/g, '');
        if (type === 'flag') facts[name] = input.checked;
        else if (type === 'choice') facts[name] = input.value;
        else if (type === 'count') {
          if (!/^[0-9]{1,15}$/.test(raw)) { input.focus(); throw new Error('「' + label + '」应为非负整数。'); }
          facts[name] = Number(raw);
        } else if (type === 'rate') {
          if (!/^0?\.[0-9]{1,4}$|^[01](\.[0-9]{1,4})?$/.test(raw)) { input.focus(); throw new Error('「' + label + '」应为小数，如 0.20。'); }
          facts[name] = raw;
        } else {
          if (!VC.isMoney(raw)) { input.focus(); throw new Error('「' + label + '」应为金额，最多两位小数，如 1000000.00。'); }
          facts[name] = fromFen(toFen(raw));
        }
      }
      return facts;
    };
    return { node: h('div', { className: 'facts-form', id: prefix + '-facts' }, fields.length ? fields : h('p', { className: 'muted', text: '该条款无需填写事实数据。' })), read: read };
  }

  // The rules module's trace and error texts carry English glosses ("门槛 threshold：…"); the
  // console shows the Chinese, with the facts by their Chinese names.
  const TRACE_WORDS = [
    [/ ?\((?:[a-z]|MEASURES)[^)]*\)/g, ''], // an English parenthetical after its Chinese
    [/: derived\)/g, '，推定)'],
    [/ \d+ per year/g, ''],
    [/\brevised\b/g, '修订版'],
    [/\bnational\b/g, '国家级'], [/\bprovincial\b/g, '省级'], [/\bmunicipal\b/g, '市级'],
    [/\btrue\b/g, '是'], [/\bfalse\b/g, '否'],
    [/\bmax\(/g, '取较大者('], [/\bcap_per_firm\b/g, '每户年度上限'],
    [/(floored to the fen)/g, '取整到分'],
  ];

  function zhTrace(text) {
    let t = String(text);
    for (const [re, zh] of TRACE_WORDS) t = t.replace(re, zh);
    // A lower-case English gloss right after Chinese ("门槛 threshold：", "符合 met") goes.
    t = t.replace(/([\u3400-\u9fff）)]) ?[a-z][a-z ,'/-]*[a-z](?=[：:，,；;。（(）)→\s]|$)/g, '$1');
    t = t.replace(/([\u3400-\u9fff]) ([A-Z][a-z]+(?: [a-z]+)*|[A-Z]{3,})(?=[：:，,；;（(）)\s]|$)/g, '$1');
    // Fact names in Chinese.
    t = t.replace(/\b([a-z]+(?:_[a-z0-9]+)+|revenue|customers|selected|recognized|level|registrations)\b/g, (m) => FACTS[m] ? '「' + FACTS[m][0] + '」' : m);
    return t.replace(/\s{2,}/g, ' ').replace(/（\s*）/g, '');
  }

  // A rules error in Chinese: the fact named by its label, with what a valid value looks like.
  function rulesErrorText(err, date) {
    if (err.code === 'validation_failed' && err.field && FACTS[err.field]) {
      const [label, type, unit] = FACTS[err.field];
      const what = type === 'rate' ? '应为 ' + unit + ' 之间的小数' : type === 'count' ? '应为非负整数' : type === 'money' ? '应为金额' : '填写不正确';
      return '事实「' + label + '」缺失或不正确：' + what + '。';
    }
    return errorText(err, {
      not_found: '该条款不存在，或在 ' + date + ' 不生效（2021-03-11 之前没有生效的措施）。',
      not_eligible: '不符合该条款的条件，不能登记奖励（见试算的计算过程）。',
      quota_exhausted: '该条款本年度的名额已满，不能再登记。',
    });
  }

  function renderAwards(root) {
    const msg = msgArea();
    const year = h('input', { type: 'number', id: 'award-year', min: 2021, max: 2100, className: 'narrow', value: VC.thisYear() });
    const list = h('div', { id: 'award-list' });
    const quotaBox = h('div', { id: 'award-quota' });
    const result = h('div', { id: 'award-result' });
    const measure = h('select', { id: 'award-measure' });
    const date = h('input', { type: 'date', id: 'award-date', value: VC.today() });
    const uscc = h('input', { id: 'award-uscc', className: 'mono', maxLength: 18, autocomplete: 'off', placeholder: '申请单位的 18 位代码' });
    const usccHint = h('span', { className: 'hint' });
    const factsBox = h('div');
    const clauseNote = h('p', { className: 'muted small', id: 'award-clause' });
    let measures = [];
    let awards = [];
    let facts = null;

    uscc.addEventListener('input', () => {
      uscc.value = uscc.value.toUpperCase().replace(/\s+/g, '');
      const r = VC.checkUscc(uscc.value);
      usccHint.textContent = r.message;
      usccHint.className = 'hint ' + (r.ok ? 'good' : r.partial ? '' : 'bad');
    });

    const current = () => measures.find((m) => m.id === measure.value);
    const showQuota = () => {
      const m = current();
      if (!m) { clear(quotaBox); return; }
      const used = awards.filter((a) => a.measure === m.id && String(a.year) === String(new Date(date.value).getFullYear() || year.value)).length;
      const quota = m.annual_quota;
      clear(quotaBox).append(h('div', { className: 'quota-line' + (quota !== null && quota !== undefined && used >= quota ? ' full' : '') },
        h('strong', { text: m.clause + ' ' + m.title }), '：本年度已登记 ',
        h('strong', { id: 'award-used', text: String(used) }), ' 项',
        quota === null || quota === undefined ? '（不限名额）' : '，名额 ' + quota + ' 项' + (used >= quota ? '，已满' : '，尚余 ' + (quota - used) + ' 项')));
    };
    const buildFacts = () => {
      const m = current();
      // The register supplies an association's earlier award itself.
      facts = factsForm(measure.value, 'award', ['previously_awarded']);
      clear(factsBox).append(facts.node);
      clauseNote.textContent = m ? '条款 ' + m.clause + '「' + m.title + '」' : '';
      showQuota();
    };
    const loadMeasures = async () => {
      try {
        measures = await api.get('/api/rules/measures?date=' + date.value);
        const keep = measure.value;
        VC.append(clear(measure), measures.map((m) => h('option', { value: m.id, text: m.clause + ' ' + m.title })));
        if (measures.some((m) => m.id === keep)) measure.value = keep;
        buildFacts();
      } catch (err) {
        clear(measure);
        clear(factsBox);
        say(msg, rulesErrorText(err, date.value), 'error');
      }
    };
    const loadAwards = async () => {
      clear(list).append(h('p', { className: 'muted loading', text: '正在加载…' }));
      try {
        awards = await api.get('/api/rules/awards?year=' + year.value);
        const title = (id) => { const m = measures.find((x) => x.id === id); return m ? m.clause + ' ' + m.title : id; };
        let total = 0;
        for (const a of awards) total += toFen(a.award);
        clear(list).append(table([
          { label: '评估日期', cell: (a) => a.date },
          { label: '条款', cell: (a) => title(a.measure) },
          { label: '申请单位', cell: (a) => h('span', { className: 'mono', text: a.applicant_uscc }) },
          { label: '奖励金额', cell: (a) => money(a.award), className: 'num' },
          { label: '政策版本', cell: (a) => a.policy_version === 'revised' ? '修订版' : a.policy_version + ' 版' },
          { label: '登记人', cell: (a) => a.recorded_by.replace(/^staff:/, '') },
          { label: '登记时间', cell: (a) => VC.dateTime(a.recorded_at) },
        ], awards, { empty: year.value + ' 年度还没有登记奖励。', rowProps: (a) => ({ dataset: { measure: a.measure, uscc: a.applicant_uscc } }) }),
        h('p', { className: 'muted', id: 'award-total', text: '合计 ' + awards.length + ' 项，' + money(fromFen(total)) }));
        showQuota();
      } catch (err) {
        clear(list);
        say(msg, errorText(err), 'error');
      }
    };

    const submit = async (record, button) => {
      say(msg, '');
      let f;
      try { f = facts.read(); } catch (e) { say(msg, e.message, 'error'); return; }
      const body = { measure: measure.value, date: date.value, facts: f };
      if (record) {
        const r = VC.checkUscc(uscc.value);
        if (!r.ok) { say(msg, '申请单位统一社会信用代码：' + r.message, 'error'); uscc.focus(); return; }
        body.applicant_uscc = uscc.value;
        const m = current();
        if (!await confirmDialog('登记奖励：' + (m ? m.clause + ' ' + m.title : measure.value) + '，申请单位 ' + uscc.value + '。金额按政策计算，登记后计入本年度名额并写入审计日志。确定登记吗？', '登记')) return;
      }
      try {
        const r = await busy(button, record ? '登记中…' : '计算中…', () => api.post(record ? '/api/rules/awards' : '/api/rules/evaluate', body));
        // A recorded award was eligible (the register refuses the others).
        clear(result).append(evaluationView(record ? Object.assign({ eligible: true }, r) : r));
        if (record) {
          say(msg, '已登记：' + uscc.value + ' 获 ' + money(r.award) + '。', 'success');
          await loadAwards();
        }
      } catch (err) {
        clear(result);
        say(msg, rulesErrorText(err, date.value), 'error');
      }
    };

    const evalBtn = h('button', { type: 'button', className: 'ghost', id: 'award-evaluate', text: '试算' });
    const recordBtn = h('button', { type: 'submit', className: 'primary', id: 'award-record', text: '登记奖励', disabled: !can('recordAwards') });
    evalBtn.addEventListener('click', () => submit(false, evalBtn));
    const form = h('form', { className: 'rules-form', id: 'award-form', noValidate: true, on: { submit: (e) => { e.preventDefault(); submit(true, recordBtn); } } },
      h('div', { className: 'row-form' }, field('政策条款', measure), field('评估日期（决定政策版本和名额年度）', date),
        h('label', { className: 'field' }, h('span', { className: 'label', text: '申请单位统一社会信用代码' }), uscc, usccHint)),
      clauseNote, quotaBox, factsBox,
      h('div', { className: 'row-form' }, evalBtn, recordBtn));
    measure.addEventListener('change', buildFacts);
    date.addEventListener('change', loadMeasures);
    const csvBtn = h('button', { type: 'button', className: 'ghost', id: 'award-csv', text: '导出 CSV' });
    csvBtn.addEventListener('click', () => exportCsv(csvBtn, msg, '/api/rules/awards.csv?year=' + year.value, 'awards-' + year.value + '.csv'));
    VC.append(root, [h('div', { className: 'page-head' }, h('h1', { text: '奖励登记' })), msg,
      can('recordAwards') ? null : roleNote('只有审核员可以登记奖励；您可以试算、查看和导出。'),
      card('登记一项奖励', form), result,
      card('年度奖励台账', h('form', { className: 'inline', on: { submit: (e) => { e.preventDefault(); loadAwards(); } } },
        field('年度', year), h('button', { type: 'submit', className: 'ghost', text: '查看' }), csvBtn), list)]);
    loadMeasures().then(loadAwards);
  }

  // ---- A new API key, shown once in its own dialog -----------------------------------------------

  function showKeyOnce(title, platformName, key) {
    let copyBtn;
    const dialog = h('dialog', { className: 'dialog key-dialog', id: 'key-dialog' },
      h('h3', { text: '⚠ ' + title + ' — 只显示这一次' }),
      h('p', { text: '这是平台「' + platformName + '」的 API 密钥。系统只保存其摘要，关闭后无法再次查看，请立即复制并通过安全渠道交给平台。' }),
      h('div', { className: 'key-row' },
        h('code', { className: 'key-value', id: 'new-api-key', text: key }),
        copyBtn = h('button', { type: 'button', className: 'primary small', id: 'copy-key', text: '复制密钥' })),
      h('div', { className: 'actions' },
        h('button', { type: 'button', className: 'ghost', id: 'key-done', text: '我已妥善保存，关闭', on: { click: () => dialog.close() } })));
    copyBtn.addEventListener('click', async () => {
      copyBtn.textContent = (await VC.copyText(key)) ? '已复制 ✓' : '请手动选中复制';
    });
    // Closed (button or Esc) is closed for good: the node and the key go.
    dialog.addEventListener('close', () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }

  // An invariant's detail in Chinese ("7 vouchers touched checked; all hold").
  const INVARIANT_WHAT = {
    'program years': '个项目年度',
    'firm-years': '条企业年度记录',
    'vouchers touched': '张当日有变动的消费券',
    'redemptions of the day': '笔当日核销',
    'redemptions and reversals of the day': '笔当日核销和撤销',
    'program years with movements that day': '个当日有资金变动的项目年度',
  };

  function invariantDetail(detail) {
    let m = String(detail).match(/^(\d+) (.+) checked; all hold$/);
    if (m) return '已检查 ' + m[1] + ' ' + (INVARIANT_WHAT[m[2]] || m[2]) + '，全部成立。';
    m = String(detail).match(/^(\d+) of (\d+) (.+?) broken: (.*)$/);
    if (m) return '已检查 ' + m[2] + ' ' + (INVARIANT_WHAT[m[3]] || m[3]) + '，其中 ' + m[1] + ' 项不成立：' + m[4];
    return detail;
  }

  // ---- Start ---------------------------------------------------------------------------------

  setupLogin();

  // ---- Staff accounts (admin) ------------------------------------------------------------------

  // A one-time code in a box that says it is shown once.
  function codeOnce(title, code, expiresAt, note) {
    return h('div', { className: 'key-once' },
      h('h3', { text: title + '（只显示这一次）' }),
      h('p', null, h('code', { id: 'new-activation-code', text: code })),
      h('p', { className: 'small muted', text: '有效期至 ' + VC.dateTime(expiresAt) + '。' + (note || '') }));
  }

  function renderStaff(root) {
    const msg = msgArea();
    const once = h('div', { id: 'code-box' });
    const list = h('div', { id: 'staff-list' });
    if (!can('manageStaff')) {
      root.append(h('h1', { text: '人员账号' }), roleNote('只有管理员可以管理人员账号。'));
      return;
    }
    const username = h('input', { id: 'staff-username', autocomplete: 'off', spellcheck: false, placeholder: '如 fin.wang' });
    const role = h('select', { id: 'staff-role' },
      Object.entries(ROLES).map(([v, label]) => h('option', { value: v, text: label })));
    role.value = 'finance';
    const form = h('form', { id: 'staff-form', className: 'inline-form' },
      field('用户名', username, '3–64 位小写字母、数字或 . _ -'), field('角色', role),
      h('button', { type: 'submit', className: 'primary', text: '创建并生成激活码' }));

    const activationNote = '请当面或电话告知本人：打开本后台登录页的“新同事：用激活码激活账号”，设置自己的密码。';
    const load = async () => {
      try {
        const staff = await api.get('/api/bureau/staff');
        clear(list).append(table([
          { label: '用户名', cell: (x) => x.username },
          { label: '角色', cell: (x) => roleSelect(x) },
          { label: '状态', cell: (x) => x.disabled ? badge('已停用', 'bad') : !x.activated ? badge('待激活', 'warn') : badge('正常', 'ok') },
          { label: '身份验证器', cell: (x) => x.totp_enrolled ? '已绑定' : '—' },
          { label: '最近登录', cell: (x) => x.last_login_at ? VC.dateTime(x.last_login_at) : '—' },
          { label: '操作', cell: (x) => staffActions(x) },
        ], staff, { rowProps: (x) => ({ dataset: { staffId: x.id, username: x.username } }) }));
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    };
    const self = (x) => x.username === session.name;
    const roleSelect = (x) => {
      const sel = h('select', { className: 'role-select', disabled: self(x) },
        Object.entries(ROLES).map(([v, label]) => h('option', { value: v, text: label })));
      sel.value = x.role;
      sel.addEventListener('change', async () => {
        if (!await confirmDialog('把 ' + x.username + ' 的角色改为「' + ROLES[sel.value] + '」？其现有登录会立即失效。', '修改')) { sel.value = x.role; return; }
        change(x, { role: sel.value }, '角色已修改。');
      });
      return sel;
    };
    const change = async (x, body, done) => {
      say(msg, '');
      try {
        await api.patch('/api/bureau/staff/' + x.id, body);
        say(msg, done, 'success');
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
      await load();
    };
    const staffActions = (x) => {
      const box = h('div', { className: 'actions-cell' });
      if (self(x)) {
        box.append(h('span', { className: 'muted small', text: '本人账号（请另一位管理员操作）' }));
        return box;
      }
      box.append(h('button', {
        type: 'button', className: 'ghost small toggle-disabled', text: x.disabled ? '启用' : '停用',
        on: { click: async () => {
          if (!x.disabled && !await confirmDialog('停用 ' + x.username + '？其所有登录立即失效。', '停用')) return;
          change(x, { disabled: !x.disabled }, x.disabled ? '账号已启用。' : '账号已停用，其登录已全部失效。');
        } },
      }));
      box.append(h('button', {
        type: 'button', className: 'ghost small reset', text: '重置',
        on: { click: async () => {
          if (!await confirmDialog('重置 ' + x.username + '？密码和身份验证器将被清除，登录立即失效，并生成新的激活码。', '重置')) return;
          say(msg, '');
          try {
            const r = await api.post('/api/bureau/staff/' + x.id + '/reset');
            clear(once).append(codeOnce(x.username + ' 的新激活码', r.activation_code, r.expires_at, activationNote));
          } catch (err) {
            say(msg, errorText(err), 'error');
          }
          await load();
        } },
      }));
      return box;
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      say(msg, '');
      try {
        const r = await busy(form.querySelector('button[type=submit]'), '创建中…',
          () => api.post('/api/bureau/staff', { username: username.value.trim(), role: role.value }));
        clear(once).append(codeOnce(r.username + '（' + ROLES[r.role] + '）的激活码', r.activation_code, r.expires_at, activationNote));
        username.value = '';
        await load();
      } catch (err) {
        say(msg, errorText(err, { already_registered: '这个用户名已经有人使用。' }), 'error');
      }
    });
    root.append(h('h1', { text: '人员账号' }), msg,
      card('新建账号', h('p', { className: 'small muted', text: '账号的密码由本人用激活码设置，管理员不知道也不代设。管理员和财务首次登录时绑定身份验证器。' }), form, once),
      card('全部账号', list));
    load();
  }

  // ---- Firms: the verification queue, search, a firm's files beside its declaration ------------

  const VERIFICATION = {
    pending: ['待审核', 'warn'],
    verified: ['已通过', 'ok'],
    rejected: ['未通过', 'bad'],
  };
  const EVIDENCE_KINDS = { business_license: '营业执照', authorization_letter: '授权委托书' };

  // Blob URLs of the firm page's images, revoked when the page is built again.
  let firmBlobUrls = [];

  function verificationBadge(v) {
    const [label, kind] = VERIFICATION[v] || [v, 'muted'];
    return badge(label, kind);
  }

  function renderFirms(root) {
    for (const url of firmBlobUrls) URL.revokeObjectURL(url);
    firmBlobUrls = [];
    if (!can('readFirms')) {
      root.append(h('h1', { text: '企业审核' }), roleNote('只有审核员（及管理员查看）可以进入企业审核。'));
      return;
    }
    const m = location.hash.match(/^#\/firms\/([0-9a-fA-F-]{36})$/);
    if (m) renderFirm(root, m[1]);
    else renderFirmList(root);
  }

  // A firm list with a "more" button that follows the Link header.
  function firmList(path, empty) {
    const box = h('div', { className: 'firm-list' }, h('p', { className: 'muted', text: '正在加载…' }));
    const load = async (url, append) => {
      const res = await api.request('GET', url, undefined, { raw: true });
      const rows = await res.json();
      const link = res.headers.get('Link');
      const next = link && link.match(/<([^>]+)>;\s*rel="next"/);
      const grid = table([
        { label: '注册时间', cell: (f) => VC.dateTime(f.registered_at) },
        { label: '企业名称', cell: (f) => h('a', { href: '#/firms/' + f.id, className: 'firm-link', text: f.name }) },
        { label: '统一社会信用代码', cell: (f) => h('span', { className: 'mono', text: f.uscc }) },
        { label: '行业 / 所在区', cell: (f) => f.industry_code + ' · ' + f.district },
        { label: '审核状态', cell: (f) => verificationBadge(f.verification) },
        { label: '', cell: (f) => h('a', { href: '#/firms/' + f.id, className: 'ghost small button-link', text: f.verification === 'pending' ? '审核' : '查看' }) },
      ], rows, { empty: empty, rowProps: (f) => ({ dataset: { firmId: f.id, uscc: f.uscc } }) });
      if (!append) clear(box);
      box.append(grid);
      if (next) {
        const more = h('button', { type: 'button', className: 'ghost small', text: '加载更多' });
        more.addEventListener('click', async () => {
          more.remove();
          await load(next[1], true);
        });
        box.append(more);
      }
    };
    return { box, load: () => load(path, false) };
  }

  function renderFirmList(root) {
    const msg = msgArea();
    const queue = firmList('/api/bureau/firms?verification=pending&limit=50', '没有待审核的企业。');
    const q = h('input', { id: 'firm-q', type: 'search', autocomplete: 'off', spellcheck: false, placeholder: '统一社会信用代码或企业名称' });
    const state = h('select', { id: 'firm-state' },
      h('option', { value: '', text: '全部状态' }),
      Object.entries(VERIFICATION).map(([v, [label]]) => h('option', { value: v, text: label })));
    const results = h('div', { id: 'firm-results' });
    const form = h('form', { id: 'firm-search', className: 'inline-form' },
      field('搜索', q), field('审核状态', state),
      h('button', { type: 'submit', className: 'primary', text: '搜索' }));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      say(msg, '');
      const params = new URLSearchParams({ limit: '50' });
      if (q.value.trim()) params.set('q', q.value.trim());
      if (state.value) params.set('verification', state.value);
      const found = firmList('/api/bureau/firms?' + params, '没有找到符合条件的企业。');
      clear(results).append(found.box);
      try {
        await busy(form.querySelector('button'), '搜索中…', found.load);
      } catch (err) {
        clear(found.box);
        say(msg, errorText(err), 'error');
      }
    });
    root.append(h('h1', { text: '企业审核' }), msg,
      card('待审核队列（先注册的在前）',
        h('p', { className: 'small muted', text: '逐一核对营业执照与注册信息：企业名称、统一社会信用代码、行业和注册地。通过后企业才能申领消费券；冒用他人代码的注册可以删除，让真正的企业注册。' }),
        queue.box),
      card('查找企业', form, results));
    queue.load().catch((err) => {
      clear(queue.box);
      say(msg, errorText(err), 'error');
    });
  }

  async function renderFirm(root, id) {
    const msg = msgArea();
    const once = h('div', { id: 'firm-code-box' });
    const loading = h('p', { className: 'muted', text: '正在加载企业资料…' });
    root.append(h('a', { href: '#/firms', className: 'back', text: '‹ 返回企业审核' }), msg, loading);
    let firm;
    try {
      firm = await api.get('/api/bureau/firms/' + id);
    } catch (err) {
      say(msg, errorText(err), 'error');
      return;
    } finally {
      loading.remove();
    }
    const files = h('div', { className: 'evidence-files', id: 'evidence-files' });
    if (!firm.evidence.length) files.append(h('p', { className: 'muted', text: '企业还没有上传材料。' }));
    for (const f of firm.evidence) {
      const title = (EVIDENCE_KINDS[f.kind] || f.kind) + ' · ' + VC.dateTime(f.uploaded_at);
      const path = '/api/bureau/firms/' + firm.id + '/evidence/' + f.id;
      const figure = h('figure', { className: 'evidence', dataset: { evidenceId: f.id } },
        h('figcaption', { text: title }));
      files.append(figure);
      if (f.content_type.startsWith('image/')) {
        // Fetched with the token and shown from a blob: URL; the server serves it only as an
        // attachment, never inline.
        const img = h('img', { alt: title, className: 'evidence-img' });
        figure.insertBefore(img, figure.firstChild);
        api.blob(path, f.content_type).then((blob) => {
          const url = URL.createObjectURL(blob);
          firmBlobUrls.push(url);
          img.src = url;
        }).catch((err) => figure.append(h('p', { className: 'msg error', text: errorText(err) })));
      } else {
        figure.insertBefore(h('div', { className: 'evidence-pdf', text: 'PDF 文件' }), figure.firstChild);
      }
      figure.append(h('button', {
        type: 'button', className: 'ghost small', text: '下载',
        on: { click: async (e) => {
          try {
            const blob = await busy(e.currentTarget, '下载中…', () => api.blob(path, f.content_type));
            VC.download(blob, f.kind + '-' + f.id + (f.content_type === 'application/pdf' ? '.pdf' : f.content_type === 'image/png' ? '.png' : '.jpg'));
          } catch (err) {
            say(msg, errorText(err), 'error');
          }
        } },
      }));
    }
    const declared = h('dl', { className: 'kv', id: 'firm-declared' },
      [['企业名称', firm.name], ['统一社会信用代码', firm.uscc], ['行业代码', firm.industry_code],
        ['注册所在区', firm.district], ['符合申领条件', firm.eligible ? '是' : '否'],
        ['联系人', firm.contact_name], ['联系电话', firm.contact_phone],
        ['注册时间', VC.dateTime(firm.registered_at)],
        ['审核状态', verificationBadge(firm.verification)],
        firm.verification_reason ? ['未通过原因', firm.verification_reason] : null,
        firm.reviewed_by ? ['审核人', firm.reviewed_by + ' · ' + VC.dateTime(firm.reviewed_at)] : null]
        .filter(Boolean).map(([k, v]) => [h('dt', { text: k }), h('dd', null, v)]));
    const side = h('div', { className: 'firm-side' }, card('注册信息（企业填报）', declared));
    if (firm.verification === 'pending' && can('verifyFirms')) side.append(decisionCard(firm, msg));
    else if (firm.verification === 'pending') side.append(roleNote('只有审核员可以作出审核决定；您可以查看。'));
    const tools = h('div', { className: 'actions-cell' });
    if (can('resetFirmPassword')) {
      tools.append(h('button', {
        type: 'button', className: 'ghost small', id: 'firm-reset', text: '生成密码重置码',
        on: { click: async (e) => {
          const button = e.currentTarget;
          if (!await confirmDialog('请先核实来电者确是「' + firm.name + '」的联系人。生成后旧的重置码作废。', '生成')) return;
          try {
            const r = await busy(button, '生成中…', () => api.post('/api/bureau/firms/' + firm.id + '/password-reset'));
            clear(once).append(codeOnce(firm.name + ' 的密码重置码', r.code, r.expires_at, '请电话告知企业联系人，在门户的“忘记密码”中使用，只能用一次。'));
          } catch (err) {
            say(msg, errorText(err), 'error');
          }
        } },
      }));
    }
    if (can('verifyFirms') && firm.verification !== 'verified' && !firm.vouchers.length) {
      tools.append(h('button', {
        type: 'button', className: 'danger-outline small', id: 'firm-delete', text: '删除该注册（冒用代码）',
        on: { click: async (e) => {
          const button = e.currentTarget;
          if (!await confirmDialog('删除「' + firm.name + '」（' + firm.uscc + '）的注册？企业上传的材料和登录会一并删除，该统一社会信用代码可由真正的企业重新注册。不能恢复。', '删除')) return;
          try {
            await busy(button, '删除中…', () => api.del('/api/bureau/firms/' + firm.id));
            location.hash = '#/firms';
          } catch (err) {
            say(msg, errorText(err, { invalid_transition: '已通过审核或已有消费券的企业不能删除。' }), 'error');
          }
        } },
      }));
    }
    if (tools.childNodes.length) side.append(card('其他操作', tools, once));
    const vouchers = table([
      { label: '券码', cell: (v) => h('span', { className: 'mono', text: v.code }) },
      { label: '年度', cell: (v) => v.year },
      { label: '面额', cell: (v) => money(v.face_value), className: 'num' },
      { label: '已核销', cell: (v) => money(v.redeemed), className: 'num' },
      { label: '状态', cell: (v) => v.status },
      { label: '申领时间', cell: (v) => VC.dateTime(v.issued_at) },
    ], firm.vouchers, { empty: '没有消费券。' });
    root.append(h('div', { className: 'page-head' }, h('h1', { text: firm.name }), verificationBadge(firm.verification)),
      h('div', { className: 'firm-review' }, card('审核材料', files), side),
      card('消费券', vouchers));
  }

  // Approve with the licence's industry code and district (prefilled from the declaration), or
  // reject with a reason the firm sees.
  function decisionCard(firm, msg) {
    const code = h('input', { id: 'decide-industry', value: firm.industry_code, maxLength: 5, className: 'mono', autocomplete: 'off' });
    const district = h('input', { id: 'decide-district', value: firm.district, autocomplete: 'off' });
    const reason = h('textarea', { id: 'decide-reason', rows: 3, maxLength: 500, placeholder: '如：营业执照照片模糊，请重新拍摄；企业名称与执照不一致' });
    const licensed = firm.evidence.some((f) => f.kind === 'business_license');
    const approve = h('button', { type: 'button', className: 'primary', id: 'decide-approve', text: '审核通过', disabled: !licensed });
    const reject = h('button', { type: 'button', className: 'danger', id: 'decide-reject', text: '不通过' });
    const decide = async (button, body, done) => {
      say(msg, '');
      try {
        await busy(button, '提交中…', () => api.post('/api/bureau/firms/' + firm.id + '/verification', body));
        say(msg, done, 'success');
        const root = $('content').firstChild;
        clear(root);
        await renderFirm(root, firm.id);
        say(root.querySelector('.page-msg'), done, 'success');
      } catch (err) {
        say(msg, errorText(err, { invalid_transition: '企业还没有上传营业执照，或已被其他审核员处理，请刷新后查看。' }), 'error');
      }
    };
    approve.addEventListener('click', () => decide(approve,
      { decision: 'verified', industry_code: code.value.trim().toUpperCase(), district: district.value.trim() },
      '已审核通过，企业现在可以申领消费券。'));
    reject.addEventListener('click', () => {
      if (!reason.value.trim()) {
        say(msg, '请填写不通过的原因，企业会看到它并据此重新上传。', 'error');
        reason.focus();
        return;
      }
      decide(reject, { decision: 'rejected', reason: reason.value.trim() }, '已标记为不通过，企业会看到原因。');
    });
    return card('审核决定',
      licensed ? null : h('p', { className: 'msg warn', text: '企业还没有上传营业执照，暂不能通过。' }),
      h('p', { className: 'small muted', text: '按营业执照核定行业代码和注册地（已按企业填报预填）；是否符合申领条件将据此重新计算。' }),
      h('div', { className: 'decide-grid' }, field('行业代码（按执照）', code), field('注册所在区（按执照）', district)),
      approve,
      h('hr'),
      field('不通过原因（企业可见）', reason),
      reject);
  }

  // ---- The caller's own account: password, authenticator ---------------------------------------

  function renderAccount(root) {
    const msg = msgArea();
    const current = h('input', { type: 'password', id: 'pw-current', autocomplete: 'current-password' });
    const next = h('input', { type: 'password', id: 'pw-new', autocomplete: 'new-password' });
    const again = h('input', { type: 'password', id: 'pw-new2', autocomplete: 'new-password' });
    const form = h('form', { id: 'password-form' },
      field('当前密码', current), field('新密码', next, '至少 10 个字符，且不能容易被猜到'), field('再次输入新密码', again),
      h('button', { type: 'submit', className: 'primary', text: '修改密码' }));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (next.value !== again.value) { say(msg, '两次输入的新密码不一致。', 'error'); return; }
      try {
        await busy(form.querySelector('button[type=submit]'), '修改中…',
          () => api.post('/api/bureau/password', { current_password: current.value, new_password: next.value }));
        current.value = next.value = again.value = '';
        say(msg, '密码已修改；您在其他设备上的登录已全部失效。', 'success');
      } catch (err) {
        say(msg, errorText(err), 'error');
      }
    });
    const totpBox = h('div', { id: 'totp-box' });
    if (session.role === 'reviewer') {
      const enrol = h('button', { type: 'button', className: 'ghost', id: 'totp-enrol', text: '绑定身份验证器（可选）' });
      enrol.addEventListener('click', async () => {
        try {
          const setup = await api.post('/api/bureau/totp');
          const img = h('img', { alt: '身份验证器二维码', width: 220, height: 220 });
          img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(setup.qr_svg);
          clear(totpBox).append(img, h('p', { className: 'small' }, '密钥（只显示这一次）：', h('code', { text: setup.secret })),
            h('p', { className: 'small muted', text: '绑定后每次登录都需要输入动态验证码。' }));
        } catch (err) {
          say(msg, errorText(err, { invalid_transition: '您已经绑定了身份验证器。如需更换，请管理员重置账号。' }), 'error');
        }
      });
      totpBox.append(enrol);
    } else {
      totpBox.append(h('p', { className: 'small muted', text: '您的角色登录时必须输入身份验证器的动态验证码。更换手机或丢失验证器时，请另一位管理员重置您的账号。' }));
    }
    root.append(h('h1', { text: '账户安全' }), msg, card('修改密码', form), card('身份验证器', totpBox));
  }

  window.addEventListener('hashchange', route);
  route();
})();
