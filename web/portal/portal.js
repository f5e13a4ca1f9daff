// The firm mini-portal: register, log in, see the year's standing, quote and claim a voucher,
// list vouchers and show one with its QR code, cancel an unused one. Views are sections of
// index.html switched by the URL hash (#/login, #/register, #/home, #/voucher/<id>).
'use strict';

(function () {
  const { h, clear, money, toFen, fromFen } = VC;
  const $ = (id) => document.getElementById(id);

  const api = VC.createClient('voucher.portal.token', () => {
    api.clear();
    forgetFirm();
    notice('登录已过期，请重新登录。', 'error');
    go('#/login');
  });

  // While the server queues a request (the opening morning), say so instead of looking stuck.
  api.onWait = (seconds) => {
    const q = $('queueing');
    if (!q) return;
    q.hidden = !seconds;
    if (seconds) q.textContent = '排队中，请稍候……现在办理的人很多，' + seconds + ' 秒后自动重试，请不要关闭页面。';
  };

  const STATUS = {
    active: ['可使用', 'ok'],
    exhausted: ['已用完', 'muted'],
    cancelled: ['已取消', 'muted'],
    lapsed: ['已失效（逾期未使用）', 'bad'],
    expired: ['已过期', 'bad'],
  };

  const LOGIN_ERRORS = {
    unauthorized: '统一社会信用代码或密码不正确，请重新输入。',
  };

  const state = { me: null, platforms: [], vouchers: [], quote: null, qrUrl: null, program: null, voucher: null, evidence: [] };

  // A voucher that can still be shown at the till; the others are listed below it, as such.
  const usable = (v) => v.status === 'active';

  // The year's rate as a percentage ("0.30" → "30%").
  function ratePercent(rate) {
    return rate ? String(Math.round(Number(rate) * 10000) / 100) + '%' : '—';
  }

  // ---- Small helpers -------------------------------------------------------------------------

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  let noticeTimer = null;
  function notice(text, kind) {
    const n = $('notice');
    clearTimeout(noticeTimer);
    if (!text) {
      n.hidden = true;
      return;
    }
    n.textContent = text;
    n.className = 'notice ' + (kind || 'info');
    n.hidden = false;
    if (kind !== 'error') noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
  }

  function formError(container, text, quiet) {
    const p = container.querySelector('.form-error');
    p.textContent = text || '';
    p.hidden = !text;
    if (text && !quiet) p.scrollIntoView({ block: 'nearest' });
  }

  // Runs `fn` with `button` disabled and showing `busyText`.
  async function busy(button, busyText, fn) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = busyText;
    try {
      return await fn();
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }

  // Upper-cases a USCC input as it is typed, keeping the caret.
  function upperCaseInput(input) {
    input.addEventListener('input', () => {
      const pos = input.selectionStart;
      const v = input.value.toUpperCase().replace(/\s+/g, '');
      if (v !== input.value) {
        input.value = v;
        try { input.setSelectionRange(pos, pos); } catch (e) { /* not a text input */ }
      }
    });
  }

  function showView(name) {
    for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== 'view-' + name;
    $('logout').hidden = !api.token();
    window.scrollTo(0, 0);
  }

  function statusBadge(status) {
    const [label, kind] = STATUS[status] || [status, 'muted'];
    return h('span', { className: 'badge ' + kind, text: label });
  }

  // A loading line in `container` (emptied first).
  function loading(container, text) {
    clear(container).append(h('p', { className: 'loading', attrs: { role: 'status' }, text: text || '正在加载…' }));
  }

  // The Chinese sentence for `err` in `container`, with a retry button when `retry` is given.
  function loadError(container, err, retry) {
    clear(container).append(h('div', { className: 'load-error', attrs: { role: 'alert' } },
      h('p', { text: '加载失败：' + VC.errorText(err) }),
      retry ? h('button', { type: 'button', className: 'ghost small', text: '重试', on: { click: retry } }) : null));
  }

  // This year's rate, cap and quota, as the bureau set them (anonymous).
  async function loadProgram() {
    const intro = $('intro-program');
    try {
      const p = await api.get('/api/portal/program', { auth: false });
      state.program = p;
      clear(intro).append('宝安区对上云上平台的制造业企业，按平台或工业软件当年度收取费用的 ',
        h('strong', { id: 'intro-rate', text: ratePercent(p.rate) }), ' 发放消费券，每家企业每年最高 ',
        h('strong', { id: 'intro-cap', text: money(p.cap_per_firm) }), '，' + p.year + ' 年度全区支持不超过 ',
        h('strong', { id: 'intro-quota', text: VC.integer(p.firm_quota) + ' 家' }), '企业',
        p.quota_remaining > 0
          ? '（尚余 ' + VC.integer(p.quota_remaining) + ' 个名额）。'
          : h('span', { className: 'quota-full', text: '（本年度名额已满）。' }));
      $('claim-rule').textContent = '消费券面额 = 服务费 × ' + ratePercent(p.rate) + '，且不超过贵企业本年度剩余额度。';
    } catch (err) {
      clear(intro).append(h('span', { className: 'load-error', text: '本年度参数读取失败：' + VC.errorText(err) }),
        h('button', { type: 'button', className: 'ghost small', text: '重试', on: { click: loadProgram } }));
    }
    return state.program;
  }

  // Everything the previous firm typed or was shown, gone (logout, session ended).
  function forgetFirm() {
    for (const form of document.querySelectorAll('form')) form.reset();
    for (const f of document.querySelectorAll('.form-error')) { f.textContent = ''; f.hidden = true; }
    state.me = null;
    state.vouchers = [];
    state.voucher = null;
    resetQuote();
    clear($('me-card'));
    clear($('voucher-list'));
    clear($('voucher-detail'));
    clear($('claim-platform'));
    closeFullQr();
    if (state.qrUrl) URL.revokeObjectURL(state.qrUrl);
    state.qrUrl = null;
  }

  function dlRow(term, value, opts) {
    return [h('dt', { text: term }), h('dd', Object.assign({ text: value }, opts || {}))];
  }

  // ---- Routing -------------------------------------------------------------------------------

  function route() {
    const hash = location.hash;
    if (!api.token()) {
      showView(hash === '#/register' ? 'register' : hash === '#/forgot' ? 'forgot' : 'login');
      loadProgram();
      return;
    }
    const m = hash.match(/^#\/voucher\/([0-9a-fA-F-]{36})$/);
    if (hash === '#/password') {
      showView('password');
    } else if (m) {
      showVoucher(m[1]);
    } else if (hash !== '#/home') {
      history.replaceState(null, '', '#/home');
      showHome();
    } else {
      showHome();
    }
  }

  // ---- Log in --------------------------------------------------------------------------------

  async function login(uscc, password) {
    const session = await api.post('/api/portal/sessions', { uscc: uscc, password: password }, { auth: false });
    api.setToken(session.token);
  }

  function setupLogin() {
    const form = $('login-form');
    upperCaseInput($('login-uscc'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const uscc = $('login-uscc').value.trim().toUpperCase();
      const password = $('login-password').value;
      const check = VC.checkUscc(uscc);
      if (!check.ok) {
        formError(form, check.message);
        $('login-uscc').focus();
        return;
      }
      if (!password) {
        formError(form, '请输入密码。');
        $('login-password').focus();
        return;
      }
      formError(form, '');
      const button = form.querySelector('button[type=submit]');
      try {
        await busy(button, '正在登录…', () => login(uscc, password));
        $('login-password').value = '';
        notice('');
        go('#/home');
      } catch (err) {
        formError(form, VC.errorText(err, LOGIN_ERRORS));
      }
    });
    $('logout').addEventListener('click', async () => {
      // The session ends on the server: the token stops working everywhere at once.
      await api.logout('/api/portal/sessions/current');
      forgetFirm();
      notice('您已退出登录。', 'info');
      go('#/login');
    });
  }

  // ---- Password: change it, or reset it with the hotline's code ---------------------------------

  function setupPassword() {
    const form = $('password-form');
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const current = $('pw-current').value;
      const next = $('pw-new').value;
      if (!current || !next) { formError(form, '请填写当前密码和新密码。'); return; }
      if (next !== $('pw-new2').value) { formError(form, '两次输入的新密码不一致。'); return; }
      formError(form, '');
      try {
        await busy(form.querySelector('button[type=submit]'), '正在修改…',
          () => api.post('/api/portal/password', { current_password: current, new_password: next }));
        $('pw-current').value = $('pw-new').value = $('pw-new2').value = '';
        notice('密码已修改；您在其他设备上的登录已全部失效。', 'success');
        go('#/home');
      } catch (err) {
        formError(form, VC.errorText(err, {
          validation_failed: err.field === 'current_password' ? '当前密码不正确。' : undefined,
        }));
      }
    });

    const reset = $('forgot-form');
    upperCaseInput($('forgot-uscc'));
    reset.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const uscc = $('forgot-uscc').value.trim().toUpperCase();
      const check = VC.checkUscc(uscc);
      if (!check.ok) { formError(reset, check.message); return; }
      const code = $('forgot-code').value.trim();
      const password = $('forgot-password').value;
      if (!code || !password) { formError(reset, '请填写重置码和新密码。'); return; }
      if (password !== $('forgot-password2').value) { formError(reset, '两次输入的新密码不一致。'); return; }
      formError(reset, '');
      try {
        await busy(reset.querySelector('button[type=submit]'), '正在重置…',
          () => api.post('/api/portal/password-reset', { uscc: uscc, code: code, new_password: password }, { auth: false }));
        $('forgot-code').value = $('forgot-password').value = $('forgot-password2').value = '';
        $('login-uscc').value = uscc;
        notice('密码已重置，请用新密码登录。', 'success');
        go('#/login');
      } catch (err) {
        formError(reset, VC.errorText(err, {
          validation_failed: err.field === 'code' ? '重置码不正确、已使用或已过期，请再次致电热线申请。' : undefined,
        }));
      }
    });
  }

  // ---- Register ------------------------------------------------------------------------------

  // Section C manufacturing, divisions 13–43.
  function isManufacturing(code) {
    return /^C(1[3-9]|[23][0-9]|4[0-3])[0-9]{0,2}$/.test(code);
  }

  function setupRegister() {
    const form = $('register-form');
    const usccInput = $('reg-uscc');
    const hint = $('reg-uscc-hint');
    upperCaseInput(usccInput);
    upperCaseInput($('reg-industry'));

    const showUsccHint = () => {
      const r = VC.checkUscc(usccInput.value);
      hint.textContent = r.message;
      hint.className = 'hint ' + (r.ok ? 'good' : r.partial ? '' : 'bad');
      usccInput.classList.toggle('invalid', !r.ok && !r.partial);
      usccInput.classList.toggle('valid', r.ok);
    };
    usccInput.addEventListener('input', showUsccHint);
    usccInput.addEventListener('blur', () => {
      const r = VC.checkUscc(usccInput.value);
      if (r.partial && usccInput.value) {
        hint.className = 'hint bad';
        usccInput.classList.add('invalid');
      }
    });
    showUsccHint();

    const eligibility = () => {
      const code = $('reg-industry').value.trim();
      const district = $('reg-district').value;
      const note = $('reg-eligibility');
      const problems = [];
      if (code.length >= 3 && !isManufacturing(code)) problems.push('行业代码不属于制造业（C13–C43）');
      if (district !== '宝安区') problems.push('注册地不在宝安区');
      note.textContent = problems.length
        ? '提示：' + problems.join('，') + '。可以注册，但暂时不能申领消费券。'
        : '';
      note.hidden = problems.length === 0;
    };
    $('reg-industry').addEventListener('input', eligibility);
    $('reg-district').addEventListener('change', eligibility);

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const data = {
        uscc: usccInput.value.trim().toUpperCase(),
        name: $('reg-name').value.trim(),
        industry_code: $('reg-industry').value.trim().toUpperCase(),
        district: $('reg-district').value,
        contact_name: $('reg-contact').value.trim(),
        contact_phone: $('reg-phone').value.replace(/[\s-]/g, ''),
        password: $('reg-password').value,
      };
      const problem = (() => {
        const u = VC.checkUscc(data.uscc);
        if (!u.ok) return [usccInput, '统一社会信用代码：' + u.message];
        if (!data.name) return [$('reg-name'), '请填写企业名称。'];
        if (!/^[A-Z][0-9]{2,4}$/.test(data.industry_code)) return [$('reg-industry'), '请填写正确的行业代码，例如 C3911。'];
        if (!data.contact_name) return [$('reg-contact'), '请填写联系人。'];
        if (!/^[0-9]{5,20}$/.test(data.contact_phone)) return [$('reg-phone'), '联系电话应为 5–20 位数字。'];
        if (data.password.length < 10) return [$('reg-password'), '密码至少需要 10 个字符。'];
        if (data.password !== $('reg-password2').value) return [$('reg-password2'), '两次输入的密码不一致。'];
        return null;
      })();
      if (problem) {
        formError(form, problem[1]);
        problem[0].focus();
        return;
      }
      formError(form, '');
      const button = form.querySelector('button[type=submit]');
      try {
        const firm = await busy(button, '正在注册…', async () => {
          const created = await api.post('/api/portal/firms', data, { auth: false });
          await login(data.uscc, data.password);
          return created;
        });
        form.reset();
        showUsccHint();
        eligibility();
        notice(firm.eligible
          ? '注册成功！请在下方上传营业执照，区工业和信息化局审核通过后即可申领消费券。'
          : '注册成功。贵企业目前不符合申领条件（仅限宝安区制造业企业）；请上传营业执照，审核时将按执照核定。', firm.eligible ? 'success' : 'info');
        go('#/home');
      } catch (err) {
        formError(form, VC.errorText(err, {
          already_registered: ALREADY_REGISTERED,
        }));
      }
    });
  }

  // A USCC is public: someone else may have registered it. The bureau can remove a registration
  // that is not the firm's, so the message sends the firm there rather than only to the login.
  const ALREADY_REGISTERED = '该统一社会信用代码已经注册。如果是贵企业自己注册的，请直接登录；' +
    '如果贵企业从未注册过，可能被他人冒用，请致电区工业和信息化局核实，核实后可删除冒用的注册。';

  // ---- Home ----------------------------------------------------------------------------------

  async function showHome() {
    showView('home');
    resetQuote();
    loading($('me-card'));
    loading($('voucher-list'), '正在加载消费券…');
    const form = $('claim-form');
    for (const el of form.elements) el.disabled = true;
    try {
      const [me, platforms, vouchers, program, evidence] = await Promise.all([
        api.get('/api/portal/me'),
        api.get('/api/portal/platforms'),
        api.get('/api/portal/vouchers'),
        loadProgram(),
        api.get('/api/portal/evidence'),
      ]);
      state.me = me;
      state.platforms = platforms;
      state.vouchers = vouchers;
      state.program = program;
      state.evidence = evidence;
      renderMe();
      renderVerification();
      renderClaim();
      renderVouchers();
    } catch (err) {
      if (err.code === 'unauthorized') return;
      loadError($('me-card'), err, showHome);
      clear($('voucher-list'));
      formError(form, '页面数据没有加载成功，暂时不能申领。', true);
    }
  }

  function renderMe() {
    const me = state.me;
    const card = clear($('me-card'));
    const capFen = toFen(me.granted) + toFen(me.cap_remaining);
    card.append(
      h('div', { className: 'firm-head' },
        h('h2', { text: me.name }),
        h('div', { className: 'firm-meta', text: me.uscc + ' · ' + me.industry_code + ' · ' + me.district })),
      me.eligible && !me.admitted && me.quota_remaining <= 0
        ? h('p', { className: 'eligibility warn', id: 'eligibility' }, '符合申领条件，但本年度名额已满',
          h('span', { className: 'small', text: '名额释放后（有企业取消或逾期未使用）可再申领。' }))
        : me.eligible && toFen(me.cap_remaining) <= 0
          ? h('p', { className: 'eligibility warn', id: 'eligibility', text: '本年度补贴额度已用完' })
          : me.eligible
            ? h('p', { className: 'eligibility ok', id: 'eligibility', text: me.verification === 'verified'
              ? '✓ 符合申领条件' : '✓ 按填报信息符合申领条件，审核通过后可申领' })
            : h('p', { className: 'eligibility bad', id: 'eligibility' },
          '✗ 暂不符合申领条件',
          h('span', { className: 'small', text: '仅限注册在宝安区、行业代码为 C13–C43 的制造业企业。' })),
      h('div', { className: 'standing' + (me.eligible ? '' : ' dim') },
        h('div', { className: 'standing-label', text: me.year + ' 年度剩余补贴额度' + (me.eligible ? '' : '（符合条件后可用）') }),
        h('div', { className: 'standing-value', id: 'cap-remaining', text: money(me.cap_remaining) }),
        h('div', { className: 'standing-of', text: '每家企业每年最高 ' + money(fromFen(capFen)) }),
        h('progress', { className: 'bar', max: capFen || 1, value: toFen(me.granted) })),
      h('dl', { className: 'facts' },
        dlRow('已获消费券', money(me.granted)),
        dlRow('已使用', money(me.redeemed)),
        dlRow('本年度名额', me.admitted
          ? '贵企业已入选（已占用名额）'
          : me.quota_remaining > 0
            ? '全区剩余 ' + VC.integer(me.quota_remaining) + ' 个名额' + (state.program ? '（共 ' + VC.integer(state.program.firm_quota) + ' 个）' : '')
            : '全区名额已满', { id: 'quota-remaining', className: !me.admitted && me.quota_remaining <= 0 ? 'quota-full' : '' })));
  }

  function renderClaim() {
    const me = state.me;
    const form = $('claim-form');
    const select = clear($('claim-platform'));
    select.append(h('option', { value: '', text: state.platforms.length ? '请选择平台' : '暂无可选平台' }));
    for (const p of state.platforms) select.append(h('option', { value: p.id, text: p.name }));
    // Only a verified firm sees the claim form; the others see the verification card.
    $('claim-card').hidden = me.verification !== 'verified';
    let blocked = '';
    if (me.verification !== 'verified') blocked = VC.ERRORS.not_verified;
    else if (!me.eligible) blocked = VC.ERRORS.not_eligible;
    else if (toFen(me.cap_remaining) <= 0) blocked = VC.ERRORS.firm_cap_reached;
    else if (!me.admitted && me.quota_remaining <= 0) blocked = VC.ERRORS.quota_exhausted;
    for (const el of form.elements) el.disabled = !!blocked;
    formError(form, blocked, true);
  }

  function renderVouchers() {
    const list = clear($('voucher-list'));
    // A firm that holds vouchers mostly comes back for them: show them before the claim form.
    const card = $('vouchers-card');
    if (state.vouchers.length) card.parentNode.insertBefore(card, $('claim-card'));
    else card.parentNode.appendChild(card);
    if (!state.vouchers.length) {
      const verified = state.me && state.me.verification === 'verified';
      list.append(h('li', { className: 'empty', text: !verified
        ? '还没有消费券。审核通过后即可申领。'
        : state.me.eligible
          ? '还没有消费券。在上方选择平台、填写服务费即可申领。'
          : '还没有消费券。' }));
      return;
    }
    // Usable ones first; cancelled, lapsed, expired and used-up ones below, under their heading.
    const live = state.vouchers.filter(usable);
    const closed = state.vouchers.filter((v) => !usable(v));
    for (const v of live.concat(closed)) {
      if (v === closed[0]) list.append(h('li', { className: 'list-sub', text: '已不能使用的消费券' }));
      list.append(h('li', null,
        h('a', { className: 'voucher-item' + (usable(v) ? '' : ' inactive'), href: '#/voucher/' + v.id, dataset: { code: v.code, status: v.status } },
          h('div', { className: 'vi-top' },
            h('span', { className: 'code', text: v.code }),
            statusBadge(v.status)),
          h('div', { className: 'vi-platform', text: v.platform_name }),
          h('div', { className: 'vi-amounts' },
            usable(v)
              ? h('span', null, '余额 ', h('strong', { text: money(v.remaining) }))
              : h('span', null, '已使用 ', h('strong', { text: money(v.redeemed) })),
            h('span', { className: 'muted', text: '面额 ' + money(v.face_value) })),
          h('div', { className: 'vi-expiry muted', text: '有效期至 ' + VC.dateTime(v.expires_at) }))));
    }
  }

  // ---- Quote and claim -----------------------------------------------------------------------

  function resetQuote() {
    state.quote = null;
    $('quote-box').hidden = true;
    $('claim-form').classList.remove('locked');
    $('quote-button').hidden = false;
    for (const el of [$('claim-platform'), $('claim-fee')]) el.readOnly = false;
    $('claim-platform').disabled = false;
    formError($('quote-box'), '');
  }

  function setupClaim() {
    const form = $('claim-form');
    const fee = $('claim-fee');
    fee.addEventListener('input', () => { if (state.quote) resetQuote(); });
    $('claim-platform').addEventListener('change', () => { if (state.quote) resetQuote(); });
    fee.addEventListener('blur', () => {
      // "50000" → "50000.00", "1,234.5" → "1234.50".
      const v = fee.value.replace(/[,，\s¥￥]/g, '');
      if (VC.isMoney(v)) fee.value = fromFen(toFen(v));
    });

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const platformId = $('claim-platform').value;
      const feeText = fee.value.replace(/[,，\s¥￥]/g, '');
      if (!platformId) {
        formError(form, '请先选择平台。');
        $('claim-platform').focus();
        return;
      }
      if (!VC.isMoney(feeText) || toFen(feeText) <= 0) {
        formError(form, '请输入大于 0 的服务费金额，最多两位小数，例如 50000.00。');
        fee.focus();
        return;
      }
      formError(form, '');
      const body = { platform_id: platformId, annual_fee: fromFen(toFen(feeText)) };
      try {
        const quote = await busy($('quote-button'), '正在计算…', () => api.post('/api/portal/vouchers/quote', body));
        state.quote = { body: body, result: quote };
        showQuote();
      } catch (err) {
        formError(form, VC.errorText(err));
      }
    });

    $('quote-edit').addEventListener('click', () => {
      resetQuote();
      fee.focus();
    });

    $('claim-button').addEventListener('click', async () => {
      if (!state.quote) return;
      const box = $('quote-box');
      formError(box, '');
      try {
        const voucher = await busy($('claim-button'), '正在申领…', () => api.post('/api/portal/vouchers', state.quote.body));
        resetQuote();
        fee.value = '';
        notice('申领成功！消费券面额 ' + money(voucher.face_value) + '，请在平台结算时出示二维码。', 'success');
        go('#/voucher/' + voucher.id);
      } catch (err) {
        formError(box, VC.errorText(err));
      }
    });
  }

  function showQuote() {
    const { body, result } = state.quote;
    const platform = state.platforms.find((p) => p.id === body.platform_id);
    $('quote-face').textContent = money(result.face_value);
    const after = fromFen(toFen(result.cap_remaining) - toFen(result.face_value));
    const rate = state.program ? Number(state.program.rate) : 0.3;
    const full = Math.floor(toFen(body.annual_fee) * Math.round(rate * 10000) / 10000);
    const facts = clear($('quote-facts'));
    VC.append(facts, [
      dlRow('平台', platform ? platform.name : ''),
      dlRow('年服务费', money(body.annual_fee)),
      dlRow('申领前剩余额度', money(result.cap_remaining)),
      dlRow('申领后剩余额度', money(after)),
      dlRow('本年度名额', state.me && state.me.admitted
        ? '已入选，本次不再占用名额'
        : '全区剩余 ' + VC.integer(result.quota_remaining) + ' 个，本次将占用 1 个'),
      dlRow('有效期至', VC.dateTime(result.expires_at) + '（北京时间）', { id: 'quote-expiry' }),
      dlRow('首次使用截止', VC.dateTime(result.lapses_at) + ' 前须至少使用一次，否则自动失效')]);
    const daysLeft = Math.ceil((new Date(result.expires_at) - Date.now()) / 86400000);
    if (daysLeft <= 31) {
      facts.append(h('p', { className: 'hint warn', id: 'quote-expiry-warn', text: '请注意：本年度消费券统一在 ' + VC.dateOnly(result.expires_at) +
        ' 到期，现在申领只剩约 ' + Math.max(daysLeft, 0) + ' 天可用，到期未用完的余额作废。' }));
    }
    if (toFen(result.face_value) < full) {
      facts.append(h('p', { className: 'hint warn', text: '服务费的 ' + ratePercent(state.program && state.program.rate) + ' 超出了剩余额度，面额已按剩余额度封顶。' }));
    }
    $('claim-platform').disabled = true;
    $('claim-fee').readOnly = true;
    $('quote-button').hidden = true;
    $('quote-box').hidden = false;
    $('quote-box').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }

  // ---- One voucher ---------------------------------------------------------------------------

  async function showVoucher(id) {
    showView('voucher');
    const box = $('voucher-detail');
    loading(box);
    let v;
    try {
      v = await api.get('/api/portal/vouchers/' + id);
    } catch (err) {
      if (err.code !== 'unauthorized') loadError(box, err, () => showVoucher(id));
      return;
    }
    renderVoucher(v);
  }

  // Why a voucher can no longer be used, in a sentence.
  const CLOSED_REASON = {
    exhausted: '余额已经全部用完。',
    cancelled: '贵企业已取消这张消费券，面额已退回本年度额度。',
    lapsed: '领取后在规定天数内一次都没有使用，已自动失效，面额已退回本年度额度。',
    expired: '已过本年度核销截止时间，剩余余额作废。',
  };

  function renderVoucher(v) {
    state.voucher = v;
    const box = clear($('voucher-detail'));
    const live = usable(v);
    const unused = toFen(v.redeemed) === 0;
    const lapsable = live && unused && new Date(v.lapses_at) < new Date(v.expires_at);
    const label = (STATUS[v.status] || [v.status])[0];
    // A voucher that cannot be used shows no QR code, no code to copy: nothing to present.
    const img = live ? h('img', { id: 'qr-img', className: 'qr', alt: '消费券二维码 ' + v.code, width: 280, height: 280 }) : null;
    const redemptions = h('div', { id: 'voucher-redemptions' });

    VC.append(box, [
      h('div', { className: 'vd-head' },
        h('span', { className: 'vd-platform', text: v.platform_name }),
        statusBadge(v.status)),
      live
        ? [h('div', { className: 'qr-wrap' }, img),
          h('p', { className: 'qr-hint', text: '在平台结算时出示此二维码，或告知下面的券码。' }),
          h('div', { className: 'qr-actions' },
            h('button', { type: 'button', className: 'secondary', id: 'qr-fullscreen', text: '全屏显示二维码', on: { click: () => openFullQr(v) } })),
          h('div', { className: 'code-row' },
            h('span', { className: 'code big', id: 'voucher-code', text: v.code }),
            h('button', {
              type: 'button', className: 'ghost small', id: 'copy-code', text: '复制券码',
              on: { click: async (ev) => { ev.currentTarget.textContent = (await VC.copyText(v.code)) ? '已复制' : '请手动抄写'; } },
            }))]
        : h('div', { className: 'closed-note', id: 'voucher-closed' },
          h('strong', { text: '此消费券' + label + '，不能再使用' }),
          CLOSED_REASON[v.status] || '',
          h('div', { className: 'small', text: '券码 ' + v.code })),
      h('div', { className: 'balance' + (live ? '' : ' dim') },
        h('div', { className: 'standing-label', text: live ? '余额' : '余额（已不能使用）' }),
        h('div', { className: 'standing-value', id: 'voucher-remaining', text: money(v.remaining) }),
        h('progress', { className: 'bar', max: toFen(v.face_value) || 1, value: toFen(v.redeemed) })),
      h('dl', { className: 'facts' },
        dlRow('面额', money(v.face_value)),
        dlRow('已使用', money(v.redeemed), { id: 'voucher-redeemed' }),
        dlRow('状态', label),
        dlRow('有效期至', VC.dateTime(v.expires_at) + '（北京时间）', { id: 'voucher-expiry' }),
        dlRow('领取时间', VC.dateTime(v.issued_at)),
        lapsable
          ? dlRow('首次使用截止', VC.dateTime(v.lapses_at), { id: 'voucher-lapse' })
          : null),
      lapsable
        ? h('p', { className: 'hint warn', text: '如在 ' + VC.dateTime(v.lapses_at) + ' 前一次都没有使用，这张消费券将自动失效，面额退回贵企业本年度额度。' })
        : null,
      h('h3', { text: '使用明细' }),
      redemptions]);

    if (live && unused) {
      box.append(h('button', {
        type: 'button', className: 'danger-outline block', id: 'cancel-voucher', text: '取消这张消费券',
        on: { click: () => cancelVoucher(v) },
      }));
    }
    box.append(h('p', { className: 'form-error', id: 'cancel-error', attrs: { role: 'alert' }, hidden: true }));
    if (img) loadQr(v.id, img);
    else if (state.qrUrl) { URL.revokeObjectURL(state.qrUrl); state.qrUrl = null; }
    loadRedemptions(v, redemptions);
  }

  // The voucher's redemptions, newest first: invoice, date, bill, discount, reversal.
  async function loadRedemptions(v, box) {
    loading(box, '正在加载使用明细…');
    let rows = [];
    try {
      let url = '/api/portal/vouchers/' + v.id + '/redemptions?limit=100';
      // Follow the pages (a voucher has few redemptions; at most 10 pages shown).
      for (let i = 0; url && i < 10; i++) {
        const res = await api.get(url, { raw: true });
        rows = rows.concat(await res.json());
        const link = res.headers.get('Link');
        const m = link && link.match(/<([^>]+)>;\s*rel="next"/);
        url = m ? m[1] : null;
      }
    } catch (err) {
      if (state.voucher === v) loadError(box, err, () => loadRedemptions(v, box));
      return;
    }
    if (state.voucher !== v) return;
    if (!rows.length) {
      clear(box).append(h('p', { className: 'muted', id: 'no-redemptions', text: '还没有使用记录。平台结算时使用后，每一笔都会显示在这里。' }));
      return;
    }
    clear(box).append(h('ul', { className: 'redemptions', id: 'redemption-list' }, rows.map((r) => h('li', {
      className: r.status === 'reversed' ? 'reversed' : '', dataset: { invoice: r.invoice_no, status: r.status },
    },
    h('div', { className: 'r-top' },
      h('span', null, '发票号 ', h('span', { className: 'r-invoice', text: r.invoice_no })),
      h('span', { className: 'muted small', text: VC.dateTime(r.created_at) })),
    h('div', { className: 'muted small', text: r.platform_name }),
    h('div', { className: 'r-amounts' },
      h('span', { text: '账单 ' + money(r.bill_amount) }),
      h('span', null, '抵扣 ', h('strong', { text: money(r.discount) }))),
    r.status === 'reversed'
      ? h('div', { className: 'r-reversal', text: '已撤销（发票作废）' + (r.reversed_at ? '，' + VC.dateTime(r.reversed_at) : '') + '：抵扣金额已退回这张消费券。' })
      : null))));
  }

  // ---- Full-screen QR, with "save image" -------------------------------------------------------

  let fullQrUrl = null;

  async function openFullQr(v) {
    const panel = $('qr-full');
    const err = $('qr-full-error');
    err.hidden = true;
    $('qr-full-code').textContent = v.code;
    $('qr-full-img').src = state.qrUrl || '';
    // "Save image" saves the PNG: usable once it is here.
    $('qr-save').disabled = true;
    $('qr-save').onclick = null;
    panel.hidden = false;
    $('qr-close').focus();
    try {
      const blob = await api.blob('/api/portal/vouchers/' + v.id + '/qr.png', 'image/png');
      if (fullQrUrl) URL.revokeObjectURL(fullQrUrl);
      fullQrUrl = URL.createObjectURL(blob);
      $('qr-full-img').src = fullQrUrl;
      $('qr-save').onclick = () => VC.download(blob, '消费券-' + v.code + '.png');
      $('qr-save').disabled = false;
    } catch (e) {
      err.textContent = '二维码图片加载失败：' + VC.errorText(e);
      err.hidden = false;
    }
  }

  function closeFullQr() {
    $('qr-full').hidden = true;
    $('qr-full-img').removeAttribute('src');
    $('qr-save').onclick = null;
    if (fullQrUrl) URL.revokeObjectURL(fullQrUrl);
    fullQrUrl = null;
  }

  async function loadQr(id, img) {
    if (state.qrUrl) URL.revokeObjectURL(state.qrUrl);
    state.qrUrl = null;
    try {
      const blob = await api.blob('/api/portal/vouchers/' + id + '/qr.svg', 'image/svg+xml');
      state.qrUrl = URL.createObjectURL(blob);
      img.src = state.qrUrl;
    } catch (err) {
      img.replaceWith(h('p', { className: 'form-error', text: '二维码加载失败：' + VC.errorText(err) }));
    }
  }

  function confirmDialog(text) {
    const dialog = $('confirm-dialog');
    $('confirm-text').textContent = text;
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
      dialog.returnValue = '';
      dialog.showModal();
    });
  }

  async function cancelVoucher(v) {
    const ok = await confirmDialog('确定要取消消费券 ' + v.code + ' 吗？取消后面额 ' + money(v.face_value) +
      ' 将退回贵企业本年度额度，这张券不能再使用。');
    if (!ok) return;
    try {
      const updated = await busy($('cancel-voucher'), '正在取消…', () => api.post('/api/portal/vouchers/' + v.id + '/cancel'));
      notice('消费券已取消，面额已退回贵企业本年度额度。', 'success');
      renderVoucher(updated);
    } catch (err) {
      const p = $('cancel-error');
      p.textContent = VC.errorText(err);
      p.hidden = false;
    }
  }

  // ---- Verification: evidence upload and the bureau's answer -----------------------------------

  const VERIFICATION = {
    pending: ['审核中', 'pending'],
    verified: ['已通过', 'ok'],
    rejected: ['未通过', 'bad'],
  };

  const EVIDENCE_KINDS = { business_license: '营业执照', authorization_letter: '授权委托书' };
  const EVIDENCE_TYPES = ['image/jpeg', 'image/png', 'application/pdf'];
  const MAX_EVIDENCE = 5 * 1024 * 1024;

  function fileSize(bytes) {
    return bytes >= 1024 * 1024 ? (bytes / 1024 / 1024).toFixed(1) + ' MB' : Math.max(1, Math.round(bytes / 1024)) + ' KB';
  }

  // A reviewer's reason as a sentence: ends with 。 unless it already ends with a stop.
  function sentence(text) {
    return /[。．.！!？?]$/.test(text) ? text : text + '。';
  }

  function renderVerification() {
    const me = state.me;
    const card = $('verify-card');
    const [label, kind] = VERIFICATION[me.verification] || [me.verification, 'muted'];
    const status = $('verify-status');
    status.textContent = label;
    status.className = 'badge ' + kind;
    const verified = me.verification === 'verified';
    card.classList.toggle('done', verified);
    // A firm that is not verified yet sees this first, above its standing: it is what to do
    // next. A verified firm needs no more of it.
    card.hidden = verified;
    if (!verified) card.parentNode.insertBefore(card, $('me-card'));
    const reason = $('verify-reason');
    reason.hidden = me.verification !== 'rejected';
    reason.textContent = me.verification === 'rejected'
      ? '审核未通过：' + sentence(me.verification_reason || '请重新上传清晰、完整的材料') + '请按要求重新上传，上传后将重新进入审核。'
      : '';
    const list = clear($('evidence-list'));
    const files = state.evidence || [];
    if (!files.length) {
      list.append(h('li', { className: 'muted', text: '还没有上传文件。' }));
    }
    for (const f of files) {
      list.append(h('li', null,
        h('span', { text: (EVIDENCE_KINDS[f.kind] || f.kind) + ' · ' + (f.content_type === 'application/pdf' ? 'PDF' : '图片') }),
        h('span', { className: 'muted', text: fileSize(f.size) + ' · ' + VC.dateTime(f.uploaded_at) })));
    }
    if (me.verification === 'pending' && files.some((f) => f.kind === 'business_license')) {
      $('verify-why').querySelector('p').textContent = '材料已提交，区工业和信息化局正在审核，通过后即可申领消费券。如需补充材料，可继续上传。';
    }
  }

  // A phone photo can be larger than 5 MB, or HEIC: redraw it as a JPEG of at most 2,400 px on
  // its long side. Anything that cannot be drawn is returned as it is (the server decides).
  async function shrinkPhoto(file) {
    const fits = EVIDENCE_TYPES.includes(file.type) && file.size <= MAX_EVIDENCE;
    if (fits || !file.type.startsWith('image/') || !window.createImageBitmap) return file;
    try {
      const bitmap = await createImageBitmap(file);
      const scale = Math.min(1, 2400 / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement('canvas');
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.85));
      return blob || file;
    } catch (e) {
      return file;
    }
  }

  function setupEvidence() {
    const form = $('evidence-form');
    const input = $('evidence-file');
    input.addEventListener('change', () => {
      const f = input.files[0];
      $('evidence-file-name').textContent = f ? f.name + '（' + fileSize(f.size) + '）' : '拍照或选择文件';
      formError(form, '');
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const picked = input.files[0];
      if (!picked) {
        formError(form, '请先拍照或选择要上传的文件。');
        return;
      }
      const button = $('evidence-upload');
      try {
        await busy(button, '正在上传…', async () => {
          const file = await shrinkPhoto(picked);
          if (!EVIDENCE_TYPES.includes(file.type)) {
            throw new Error('type');
          }
          if (file.size > MAX_EVIDENCE) throw new Error('size');
          const kind = $('evidence-kind').value;
          await api.upload('/api/portal/evidence?kind=' + encodeURIComponent(kind), file);
        });
        input.value = '';
        $('evidence-file-name').textContent = '拍照或选择文件';
        formError(form, '');
        notice('上传成功，请等待区工业和信息化局审核。', 'success');
        await showHome();
      } catch (err) {
        const local = { type: '只支持 JPG、PNG 照片或 PDF 文件，请重新选择。', size: '文件超过 5 MB，请压缩后或改用照片上传。' };
        formError(form, local[err.message] || VC.errorText(err, {
          payload_too_large: local.size,
          validation_failed: '文件类型不对：只支持 JPG、PNG 照片或 PDF 文件，且文件内容须与类型一致。',
          invalid_transition: state.me && state.me.verification === 'verified'
            ? '贵企业已通过审核，无需再上传材料。'
            : '最多只能上传 10 个文件。如需重新提交，请致电区工业和信息化局。',
        }));
      }
    });
  }

  // ---- Start ---------------------------------------------------------------------------------

  setupLogin();
  setupRegister();
  setupPassword();
  setupClaim();
  setupEvidence();
  $('qr-close').addEventListener('click', closeFullQr);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !$('qr-full').hidden) closeFullQr(); });
  window.addEventListener('hashchange', () => { closeFullQr(); route(); });
  route();
})();
