// Shared by the firm portal and the bureau console: the API client (bearer token from
// sessionStorage, problem+json errors), the error-code → Chinese sentence map, money and
// Asia/Shanghai date formatting, the USCC check, and a small DOM builder (no innerHTML).
'use strict';

(function () {
  const TZ = 'Asia/Shanghai';

  // ---- Error codes of API.md, each as a plain Chinese sentence ----------------------------

  const ERRORS = {
    malformed_request: '提交的数据格式不正确，请刷新页面后重试。',
    unauthorized: '您尚未登录或登录已过期，请重新登录。',
    forbidden: '您的账号没有权限进行此项操作。',
    wrong_platform: '这张消费券绑定的是其他平台，不能在本平台使用。',
    not_found: '没有找到相应的记录，它可能不存在，或您无权查看。',
    already_registered: '该统一社会信用代码（或用户名）已经注册过了。',
    not_verified: '贵企业的注册还没有通过区工业和信息化局审核，审核通过后才能申领消费券。',
    quota_exhausted: '本年度的企业名额已经满了，暂时无法申领。',
    firm_cap_reached: '贵企业本年度的补贴额度已经用完（已达每家企业的年度上限）。',
    voucher_not_active: '这张消费券已取消、已失效或已过期，不能再使用。',
    voucher_exhausted: '这张消费券的余额已经用完。',
    voucher_has_redemptions: '这张消费券已经使用过，不能再取消。',
    duplicate_invoice: '这个发票号已经核销过，不能重复使用。',
    already_reversed: '这笔核销已经撤销过了。',
    period_closed: '该月的结算单已经审核，当月账目已锁定，不能再更改。',
    invalid_transition: '当前状态不允许这项操作（例如结算单须先审核再付款，参数不能低于已承诺的数额），请刷新后查看最新状态。',
    idempotency_in_flight: '相同的请求正在处理中，请稍候再试。',
    idempotency_key_reused: '这个请求编号（幂等键）已经用于另一笔不同的请求。',
    validation_failed: '有一项内容填写不正确，请检查后重试。',
    not_eligible: '贵企业不符合申领条件：仅限注册在宝安区的制造业企业（行业代码 C13–C43）。',
    invalid_voucher: '消费券无效：券码不存在，或二维码已损坏、签名不正确。',
    payload_too_large: '提交的内容太大（超过 64 KB），请精简后重试。',
    rate_limited: '操作太频繁了，请稍后再试。',
    overloaded: '现在办理的人很多，系统正在排队处理，请稍候再试。',
    internal: '系统暂时出现故障，请稍后再试。',
    otp_required: '请输入身份验证器上显示的 6 位动态验证码。',
    separation_of_duties: '四眼原则：审核这张结算单的财务人员不能再登记它的付款，请由另一位财务同事办理。',
    network: '无法连接到服务器，请检查网络后重试。',
  };

  // Request fields (and a few facts) in Chinese, with what a valid value looks like.
  const FIELDS = {
    uscc: ['统一社会信用代码', '应为 18 位，校验位须正确'],
    name: ['名称', '不能为空'],
    industry_code: ['行业代码', '应为国民经济行业分类代码，如 C3911'],
    district: ['注册所在区', '不能为空'],
    contact_name: ['联系人', '不能为空'],
    contact_phone: ['联系电话', '应为 5–20 位数字'],
    password: ['密码', '至少 10 个字符，且不能是常见密码、连续或重复的字符、日期或企业名称等容易被猜到的内容；建议用几个互不相关的词加数字组合'],
    current_password: ['当前密码', '请输入现在使用的密码'],
    code: ['重置码', '由区工信局热线提供，一次有效，24 小时内使用'],
    activation_code: ['激活码', '由管理员提供，一次有效，72 小时内使用'],
    new_password: ['新密码', '至少 10 个字符，且不能是常见密码、连续或重复的字符、日期或企业名称等容易被猜到的内容；建议用几个互不相关的词加数字组合'],
    annual_fee: ['年服务费', '应为大于 0 的金额，最多两位小数'],
    platform_id: ['平台', '请选择一个平台'],
    username: ['用户名', '3–64 位小写字母、数字或 . _ -'],
    role: ['角色', '请选择角色'],
    month: ['月份', '格式为 YYYY-MM，且不能是未来的月份'],
    business_date: ['业务日期', '格式为 YYYY-MM-DD，且不能是未来的日期'],
    reference: ['付款凭证号', '1–100 个字符'],
    firm_quota: ['企业名额', '应为整数，且不少于已入选企业数'],
    cap_per_firm: ['每户补贴上限', '应为金额，且不低于已发放给任一企业的金额'],
    claim_validity_days: ['未使用失效天数', '应为 1–366 的整数'],
    measure: ['政策条款', '请选择'],
    date: ['日期', '格式为 YYYY-MM-DD'],
    facts: ['事实数据', '应为 JSON 对象'],
    year: ['年度', '应为四位年份'],
    limit: ['每页条数', '应为正整数'],
    body: ['请求内容', '格式不正确'],
    bill_amount: ['账单金额', '应为大于 0 的金额'],
    invoice_no: ['发票号', '不能为空'],
    'Idempotency-Key': ['幂等键', '1–64 个可打印字符'],
    q: ['查询内容', '输入券码、统一社会信用代码或企业名称；券码和信用代码至少 4 位'],
    status: ['状态', '请从列表中选择'],
    firm_id: ['企业', '请重新选择企业'],
    cursor: ['翻页位置', '请回到第一页重新查询'],
    query: ['查询条件', '符合条件的记录太多，请缩小范围'],
    applicant_uscc: ['申请单位统一社会信用代码', '应为 18 位，校验位须正确'],
    file: ['文件', '只支持 JPG、PNG 或 PDF'],
    content_type: ['文件类型', '只支持 JPG、PNG 或 PDF，且须与文件内容一致'],
    kind: ['材料类型', '营业执照或授权委托书'],
    reason: ['原因', '不通过时必须填写，企业会看到'],
    decision: ['审核结果', '通过或不通过'],
    verification: ['审核状态', '待审核、已通过或未通过'],
  };

  function fieldLabel(field) {
    return FIELDS[field] ? FIELDS[field][0] : field;
  }

  class ApiError extends Error {
    constructor(status, problem, retryAfter) {
      super((problem && problem.detail) || 'HTTP ' + status);
      this.status = status;
      this.code = (problem && problem.code) || codeForStatus(status);
      this.field = (problem && problem.field) || null;
      this.detail = (problem && problem.detail) || '';
      this.retryAfter = retryAfter || null;
    }
  }

  function codeForStatus(status) {
    if (status === 0) return 'network';
    if (status === 401) return 'unauthorized';
    if (status === 403) return 'forbidden';
    if (status === 404) return 'not_found';
    if (status === 413) return 'payload_too_large';
    if (status === 429) return 'rate_limited';
    if (status === 503) return 'overloaded';
    return 'internal';
  }

  // The sentence for an error. `overrides` maps a code to a sentence for one context (a login
  // form's 401, for instance); `showField` adds the raw field name (the console's staff know it).
  function errorText(err, overrides, showField) {
    if (!(err instanceof ApiError)) {
      return ERRORS.network;
    }
    if (overrides && overrides[err.code]) return overrides[err.code];
    if (err.code === 'validation_failed' && err.field) {
      const f = FIELDS[err.field];
      const raw = showField && f ? '（' + err.field + '）' : '';
      if (f) return '「' + f[0] + '」' + raw + '填写不正确：' + f[1] + '。';
      return '「' + err.field + '」填写不正确，请检查后重试。';
    }
    let text = ERRORS[err.code] || '操作没有成功（错误码 ' + err.code + '）。';
    if (err.code === 'rate_limited' && err.retryAfter) {
      const secs = Number(err.retryAfter);
      text = secs > LOCKOUT_SECONDS
        ? '登录失败次数过多：为保护账号安全，从当前网络登录该账号已暂停约 ' + Math.ceil(secs / 60) +
          ' 分钟，到时自动恢复。如忘记密码，请致电区工业和信息化局。'
        : '操作太频繁了，请 ' + secs + ' 秒后再试。';
    }
    if (err.code === 'overloaded' && err.retryAfter) {
      text = '现在办理的人很多，系统正在排队处理，请 ' + err.retryAfter + ' 秒后再试。';
    }
    return text;
  }

  // A 429 that asks for a wait longer than this is a login lockout, shown, not retried.
  const LOCKOUT_SECONDS = 60;
  // How long the client keeps retrying a request the server queued (429/503) before it gives up.
  const RETRY_BUDGET_SECONDS = 180;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- API client ----------------------------------------------------------------------------

  // A client whose bearer token lives in sessionStorage under `storageKey`. `onUnauthorized` is
  // called when a request made with a token answers 401 (the session ended).
  function createClient(storageKey, onUnauthorized) {
    const client = {
      // Set by a page: called with the seconds it will wait before retrying a queued request,
      // and with 0 when the wait is over.
      onWait: null,
      token() {
        return sessionStorage.getItem(storageKey);
      },
      setToken(token) {
        sessionStorage.setItem(storageKey, token);
      },
      clear() {
        sessionStorage.removeItem(storageKey);
      },
      // Sends a request; resolves with the parsed JSON (null for 204), or with the Response
      // itself when `opts.raw`; rejects with an ApiError.
      async request(method, path, body, opts) {
        opts = opts || {};
        const headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
        const token = client.token();
        if (token && opts.auth !== false) headers.Authorization = 'Bearer ' + token;
        const init = { method: method, headers: headers, cache: 'no-store' };
        if (opts.file) {
          // A file as the body itself (an evidence upload), typed as the file is.
          headers['Content-Type'] = opts.file.type;
          init.body = opts.file;
        } else if (body !== undefined) {
          headers['Content-Type'] = 'application/json';
          init.body = JSON.stringify(body);
        }
        let res;
        let waited = 0;
        for (;;) {
          try {
            res = await fetch(path, init);
          } catch (e) {
            if (client.onWait) client.onWait(0);
            throw new ApiError(0, { code: 'network' });
          }
          // The server sheds load (503) or paces this address (a short 429): wait as it says and
          // send again by ourselves, telling the page so it can show that we are queueing.
          const wait = Number(res.headers.get('Retry-After')) || 1;
          const queued = res.status === 503 || (res.status === 429 && wait <= LOCKOUT_SECONDS);
          if (!queued || opts.noRetry || waited + wait > RETRY_BUDGET_SECONDS) break;
          if (client.onWait) client.onWait(wait);
          await sleep(wait * 1000 + Math.floor(Math.random() * 500));
          waited += wait;
        }
        if (client.onWait) client.onWait(0);
        if (!res.ok) {
          let problem = null;
          try {
            problem = await res.json();
          } catch (e) {
            problem = null;
          }
          const err = new ApiError(res.status, problem, res.headers.get('Retry-After'));
          if (res.status === 401 && headers.Authorization && onUnauthorized) onUnauthorized(err);
          throw err;
        }
        if (opts.raw) return res;
        if (res.status === 204) return null;
        const text = await res.text();
        return text ? JSON.parse(text) : null;
      },
      get(path, opts) {
        return client.request('GET', path, undefined, opts);
      },
      post(path, body, opts) {
        return client.request('POST', path, body, opts);
      },
      patch(path, body, opts) {
        return client.request('PATCH', path, body, opts);
      },
      del(path, opts) {
        return client.request('DELETE', path, undefined, opts);
      },
      // POSTs a File or Blob as the body itself, with its own type.
      upload(path, file, opts) {
        return client.request('POST', path, undefined, Object.assign({}, opts || {}, { file: file }));
      },
      // Ends the session on the server (the token stops working everywhere at once), then
      // forgets it here; a session already ended or a network failure still forgets it.
      async logout(path) {
        if (client.token()) {
          try {
            await client.request('DELETE', path, undefined, { noRetry: true });
          } catch (e) {
            // Already ended, or unreachable: forgetting the token is all that is left to do.
          }
        }
        client.clear();
      },
      // Fetches a binary resource with the token and resolves with a Blob of `type` (or the
      // response's own type).
      async blob(path, type) {
        const res = await client.request('GET', path, undefined, { raw: true, headers: { Accept: '*/*' } });
        const buf = await res.arrayBuffer();
        return new Blob([buf], { type: type || res.headers.get('Content-Type') || 'application/octet-stream' });
      },
    };
    return client;
  }

  // The payload of a JWT, decoded (UTF-8 aware); null when it is not one.
  function jwtPayload(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const padded = part + '='.repeat((4 - (part.length % 4)) % 4);
      const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      return null;
    }
  }

  // ---- Money: decimal strings, never floats ------------------------------------------------

  const MONEY_RE = /^[0-9]{1,12}(\.[0-9]{1,2})?$/;

  function isMoney(text) {
    return MONEY_RE.test(text);
  }

  // "12345.6" → 1234560 (fen, as a safe integer: 14 digits fit in a double exactly).
  function toFen(text) {
    const s = String(text).trim();
    const neg = s.startsWith('-');
    const [i, f = ''] = (neg ? s.slice(1) : s).split('.');
    const fen = Number(i || '0') * 100 + Number((f + '00').slice(0, 2));
    return neg ? -fen : fen;
  }

  function fromFen(fen) {
    const neg = fen < 0;
    const abs = Math.abs(fen);
    const yuan = Math.floor(abs / 100);
    const cents = String(abs % 100).padStart(2, '0');
    return (neg ? '-' : '') + yuan + '.' + cents;
  }

  // "12345.67" → "¥12,345.67".
  function money(text) {
    if (text === null || text === undefined || text === '') return '—';
    let s = String(text).trim();
    const neg = s.startsWith('-');
    if (neg) s = s.slice(1);
    let [i, f = ''] = s.split('.');
    i = (i || '0').replace(/^0+(?=\d)/, '').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    return (neg ? '-' : '') + '¥' + i + '.' + (f + '00').slice(0, 2);
  }

  function integer(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  // ---- Dates in Asia/Shanghai ----------------------------------------------------------------

  const partsFormat = new Intl.DateTimeFormat('en-GB', {
    timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  });

  function shanghaiParts(date) {
    const out = {};
    for (const p of partsFormat.formatToParts(date)) out[p.type] = p.value;
    return out;
  }

  // An RFC 3339 instant → "2026-11-22 07:17" in Asia/Shanghai.
  function dateTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    const p = shanghaiParts(d);
    return p.year + '-' + p.month + '-' + p.day + ' ' + p.hour + ':' + p.minute;
  }

  // An RFC 3339 instant → "2026-11-22" in Asia/Shanghai.
  function dateOnly(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    const p = shanghaiParts(d);
    return p.year + '-' + p.month + '-' + p.day;
  }

  // Today's business date in Asia/Shanghai, `offsetDays` later (negative: earlier).
  function today(offsetDays) {
    return dateOnly(new Date(Date.now() + (offsetDays || 0) * 86400000).toISOString());
  }

  function thisMonth() {
    return today().slice(0, 7);
  }

  function thisYear() {
    return Number(today().slice(0, 4));
  }

  // ---- USCC (GB 32100-2015, with the GB 11714-1997 organisation code) ------------------------

  const USCC_CHARSET = '0123456789ABCDEFGHJKLMNPQRTUWXY';
  const ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2];

  function usccWeight(i) {
    // 3^(i-1) mod 31 for position i = 1..17 (i here is 0-based).
    let w = 1;
    for (let k = 0; k < i; k++) w = (w * 3) % 31;
    return w;
  }

  function orgCheckChar(body8) {
    let sum = 0;
    for (let i = 0; i < 8; i++) sum += parseInt(body8[i], 36) * ORG_WEIGHTS[i];
    const c = 11 - (sum % 11);
    return c === 10 ? 'X' : c === 11 ? '0' : String(c);
  }

  function usccCheckChar(first17) {
    let sum = 0;
    for (let i = 0; i < 17; i++) sum += USCC_CHARSET.indexOf(first17[i]) * usccWeight(i);
    return USCC_CHARSET[(31 - (sum % 31)) % 31];
  }

  // Checks an (already upper-cased) USCC. Returns {ok: true} or {ok: false, message} with a
  // Chinese sentence saying what is wrong; `partial` while it is still shorter than 18.
  function checkUscc(code) {
    if (code.length === 0) return { ok: false, partial: true, message: '请输入 18 位统一社会信用代码。' };
    for (let i = 0; i < code.length; i++) {
      if (USCC_CHARSET.indexOf(code[i]) < 0) {
        return {
          ok: false,
          message: '第 ' + (i + 1) + ' 位的「' + code[i] + '」不是有效字符（只能是数字和除 I、O、Z、S、V 以外的大写字母）。',
        };
      }
    }
    if (code.length < 18) {
      return { ok: false, partial: true, message: '已输入 ' + code.length + ' 位，还差 ' + (18 - code.length) + ' 位。' };
    }
    if (code.length > 18) return { ok: false, message: '统一社会信用代码只有 18 位，多了 ' + (code.length - 18) + ' 位。' };
    for (let i = 8; i < 16; i++) {
      if (isNaN(parseInt(code[i], 36))) return { ok: false, message: '第 ' + (i + 1) + ' 位不是有效字符。' };
    }
    const org = orgCheckChar(code.slice(8, 16));
    if (code[16] !== org) {
      return { ok: false, message: '这个代码有误（组织机构代码部分的校验不通过）。请对照营业执照逐位核对，不要只改某一位让它“通过”。' };
    }
    const check = usccCheckChar(code.slice(0, 17));
    if (code[17] !== check) {
      return { ok: false, message: '这个代码有误（校验位不符）。请对照营业执照逐位核对，不要只改某一位让它“通过”。' };
    }
    return { ok: true, message: '代码格式和校验位正确。' };
  }

  // ---- DOM ----------------------------------------------------------------------------------

  // h('div', {className, text, attrs: {...}, on: {click}, ...props}, child, ...): an element.
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === 'text') node.textContent = v;
        else if (k === 'attrs') for (const [a, av] of Object.entries(v)) { if (av !== null && av !== undefined && av !== false) node.setAttribute(a, av === true ? '' : av); }
        else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
        else if (k === 'dataset') Object.assign(node.dataset, v);
        else node[k] = v;
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(node, c);
      else if (c instanceof Node) node.appendChild(c);
      else node.appendChild(document.createTextNode(String(c)));
    }
  }

  // An SVG element with attributes.
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    append(node, children);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  // Saves a Blob as a file through a temporary a[download].
  function download(blob, filename) {
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: filename, className: 'hidden-link' });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      return false;
    }
  }

  window.VC = {
    ERRORS, FIELDS, ApiError, errorText, fieldLabel, createClient, jwtPayload,
    isMoney, toFen, fromFen, money, integer,
    dateTime, dateOnly, today, thisMonth, thisYear,
    checkUscc, usccCheckChar, orgCheckChar,
    h, svg, clear, append, download, copyText,
  };
})();
