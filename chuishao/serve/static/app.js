"use strict";
const $ = (id) => document.getElementById(id);
let taxonomy = null, answer = null, sent = null, generation = 0;
let maxChars = 20000;  // the service's default CHUISHAO_MAX_TEXT_CHARS; its 413 reason gives the configured one
const EXCERPT_CHARS = 1000;  // text shown under the evidence words; the whole text is still sent and stored

const keyInput = $("apikey");
keyInput.value = sessionStorage.getItem("chuishao-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("chuishao-key", keyInput.value));

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyInput.value) h["X-API-Key"] = keyInput.value;
  return h;
}
function detail(body, res) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((e) => (e.loc || []).join(".") + ": " + e.msg).join("; ");
  return "HTTP " + res.status;
}
async function call(path, payload, method) {
  let res;
  try {
    res = await fetch(path, { method: method || "POST", headers: headers(), body: payload ? JSON.stringify(payload) : undefined });
  } catch (e) {
    const err = new Error(e.message || String(e)); err.status = 0; throw err;  // no answer at all
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) { const err = new Error(detail(body, res)); err.status = res.status; throw err; }
  if (body === null) { const err = new Error("answer is not JSON"); err.status = res.status; throw err; }  // a proxy's page
  return body;
}

// The service answers in English; the page says what it means in Chinese, the original below it.
function explain(err) {
  const m = err.message || "", st = err.status;
  let g;
  if (st === 0) return "无法连接服务：网络中断或服务已停止，请稍后重试。";
  if (/only emoticons/.test(m)) return "内容只有表情符号，没有可分类的文字。";
  if (/^empty text/.test(m)) return "诉求内容和标题都是空的，请至少填写一项。";
  if ((g = /not Chinese \((\d+)% Chinese characters, at least (\d+)% needed\)/.exec(m)))
    return "内容不是中文（中文字符只占 " + g[1] + "%，至少需要 " + g[2] + "%），无法分类。";
  if (/not Chinese/.test(m)) return "内容不是中文，无法分类。";
  if ((g = /text too long: (\d+) characters, the limit is (\d+)/.exec(m))) {
    maxChars = Number(g[2]);
    return "诉求内容过长：" + g[1] + " 字，上限 " + g[2] + " 字。请删减后再提交（不会自动截断）。";
  }
  if ((g = /title too long: (\d+) characters, the limit is (\d+)/.exec(m)))
    return "标题过长：" + g[1] + " 字，上限 " + g[2] + " 字。请删减后再提交。";
  if (/request body too large/.test(m) || st === 413) return "提交的内容过大，服务拒绝接收。请删减后再提交。";
  if (/(missing|wrong) API key/.test(m) || st === 401) return "API 密钥缺失或错误：请在左侧填写正确的密钥。";
  if (/no API key configured/.test(m) || st === 403) return "服务未配置 API 密钥，无法执行此操作，请联系管理员。";
  if (st === 429) return "此地址多次使用错误的密钥，已被暂时锁定：请稍后再试。";
  if (/feedback store|store of recent reports/.test(m) && st === 503) return "反馈存储暂不可用（分类不受影响），请稍后重试。";
  if (st === 503) return "服务繁忙，请稍后重试。";
  if (/answer is not JSON/.test(m)) return "服务的回答无法读取（HTTP " + st + "），请联系管理员。";
  if (st >= 500) return "服务内部错误（HTTP " + st + "），请稍后重试或联系管理员。";
  return "请求被服务拒绝（HTTP " + st + "）。";
}
// A Chinese line, then the service's own message in small print (textContent: nothing is parsed as HTML).
function renderError(el, prefix, err) {
  el.textContent = "";
  el.className = "error";
  const line = document.createElement("div");
  line.textContent = prefix + explain(err);
  const raw = document.createElement("small");
  raw.className = "raw";
  raw.textContent = "服务返回：" + (err.message || "");
  el.append(line, raw);
}
function say(text, kind) { const s = $("status"); s.textContent = text; s.className = kind || ""; }
function formSay(text, kind) { const s = $("classify-msg"); s.textContent = text; s.className = kind || ""; }

// Characters as the service counts them (code points, not UTF-16 units).
function charCount(s) { let n = 0; for (const _ of s) n++; return n; }
function updateCounter() {
  const n = charCount($("text").value), c = $("counter");
  if (n > maxChars) {
    c.textContent = n + " / " + maxChars + " 字：超过上限，服务将拒绝，请删减";
    c.className = "over";
  } else {
    c.textContent = n + " / " + maxChars + " 字";
    c.className = "";
  }
}
$("text").addEventListener("input", updateCounter);

// Evidence words are marked in the text as typed; the text is escaped first (no HTML injection).
function escapeHtml(s) { return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }
function usableWords(words) { return listOf(words).filter((w) => typeof w === "string" && w.length > 1); }
function highlight(text, words) {
  const usable = usableWords(words).sort((a, b) => b.length - a.length);
  if (!usable.length) return escapeHtml(text);
  const re = new RegExp("(" + usable.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|") + ")", "gi");
  return text.split(re).map((part, i) => (i % 2 ? "<mark>" + escapeHtml(part) + "</mark>" : escapeHtml(part))).join("");
}
// The evidence words as a list: the model's words are simplified Chinese, so a traditional-Chinese
// text (油煙) does not contain them (油烟) and highlighting alone would show nothing.
function showEvidence(words, text, title) {
  const list = $("evidence"), whole = ((title || "") + "\n" + text).toLowerCase();
  list.innerHTML = "";
  const shown = listOf(words).filter((w) => typeof w === "string" && w);
  if (!shown.length) {
    const li = document.createElement("li"); li.className = "absent"; li.textContent = "（无）"; list.appendChild(li);
  }
  for (const w of shown) {
    const li = document.createElement("li"); li.textContent = w;
    if (!whole.includes(w.toLowerCase())) { li.className = "absent"; li.title = "原文中未直接出现（如繁体写法），按简体识别"; }
    list.appendChild(li);
  }
  const chars = Array.from(text), shortened = chars.length > EXCERPT_CHARS;
  const excerpt = shortened ? chars.slice(0, EXCERPT_CHARS).join("") + "……" : text;
  $("highlighted").innerHTML = highlight(excerpt, words);
  $("highlighted").classList.toggle("hidden", !text);
  $("excerpt-note").textContent = shortened ? "（仅显示前 " + EXCERPT_CHARS + " 字，全文共 " + chars.length + " 字，已完整提交）" : "";
}

// Any field may be missing (older services, free label sets): a topic then has no sub-problems or departments.
function topicInfo(code) { return taxonomy && Array.isArray(taxonomy.topics) ? taxonomy.topics.find((t) => t.code === code) || null : null; }
function listOf(value) { return Array.isArray(value) ? value : []; }
function fillSubs(code, selected) {
  const sel = $("fix-sub"); sel.innerHTML = "";
  const none = document.createElement("option"); none.value = ""; none.textContent = "（不指定）"; sel.appendChild(none);
  for (const s of listOf((topicInfo(code) || {}).subs)) {
    const o = document.createElement("option"); o.value = s.code; o.textContent = s.code + " " + s.name;
    if (s.code === selected) o.selected = true;
    sel.appendChild(o);
  }
}
function fillDepartments(code) {
  const t = topicInfo(code) || {};
  $("fix-lead").value = t.lead || "";
  $("fix-assist").value = listOf(t.assist).join("，");
}
$("fix-topic").addEventListener("change", (e) => { fillSubs(e.target.value, null); fillDepartments(e.target.value); });

// Confirm and correct act on the answer shown: without one (a new request, a failed one) they are off,
// so a message can never be stored with another message's answer.
function setActionsEnabled(on) { for (const id of ["confirm", "correct"]) $(id).disabled = !on; }
function clearResult() {
  answer = null; sent = null;
  setActionsEnabled(false);
  $("result").classList.add("hidden");
  say("");
}

// The place (jurisdiction): district > street > community, the compound or road, and the office
// responsible; absent from older services and with --gazetteer none.
function showPlace(j) {
  j = j || {};
  const chain = [j.province, j.city, j.district, j.street, j.community].filter((p) => typeof p === "string" && p);
  const place = typeof j.place === "string" && j.place ? j.place : "";
  // units the gazetteer does not list, below the place shown: their own office is unknown, the one shown is the
  // nearest listed unit's
  const unlisted = listOf(j.unlisted).filter((u) => typeof u === "string" && u);
  const named = chain.concat(unlisted.length ? [unlisted.join(" › ") + "（未列入地名库）"] : []);
  $("place").textContent = named.length || place ? named.join(" › ") + (place ? "（" + place + "）" : "") : "未识别到地点";
  $("office").textContent = typeof j.office === "string" && j.office
    ? "责任单位：" + j.office + (unlisted.length ? "（" + unlisted[unlisted.length - 1] + "的责任单位未知，按上级派单）" : "")
    : (unlisted.length ? "责任单位：未知（" + unlisted.join("、") + "未列入地名库）" : "");
  const matched = listOf(j.matched).filter((m) => typeof m === "string");
  let note = matched.length ? "文中地名：" + matched.join("、") : "";
  if (typeof j.candidates === "number" && j.candidates > 1) note += "（提到 " + j.candidates + " 处地点，取最具体且一致的一处）";
  if (typeof j.confidence === "number") note += "　置信度 " + Math.round(j.confidence * 100) + "%";
  $("place-note").textContent = note;
}

// Ongoing danger (urgency): high and medium get a banner with the words that raised it, shown first.
function showUrgency(u) {
  u = u || {};
  const el = $("urgency"), level = u.level === "high" || u.level === "medium" ? u.level : null;
  el.className = level ? "urgency " + level : "hidden";
  const words = listOf(u.triggers).filter((w) => typeof w === "string" && w);
  el.textContent = level ? (level === "high" ? "紧急：可能危及生命，立即处置" : "较急：存在安全隐患，尽快处置") +
    (words.length ? "（" + words.join("、") + "）" : "") : "";
}

function show(a, text, title) {
  answer = a;
  showUrgency(a.urgency);
  $("result").classList.remove("hidden");
  $("topic").textContent = a.topic + " " + a.topic_name + (a.area ? "（" + a.area + "）" : "");
  $("sub").textContent = a.sub ? "具体问题：" + a.sub + " " + a.sub_name : "";
  const r = $("review");
  r.textContent = a.needs_review ? "需人工复核" : "高置信";
  r.className = "badge " + (a.needs_review ? "review" : "sure");
  $("bars").innerHTML = "";
  for (const t of listOf(a.top)) {
    const row = document.createElement("div"); row.className = "bar"; row.dataset.topic = t.topic;
    const pct = Math.round(t.score * 1000) / 10;
    row.innerHTML = "<span></span><div class='track'><div class='fill'></div></div><span></span>";
    row.children[0].textContent = t.topic + " " + t.topic_name;
    row.querySelector(".fill").style.width = pct + "%";
    row.children[2].textContent = pct + "%";
    $("bars").appendChild(row);
  }
  const dept = a.departments || {}, assist = listOf(dept.assist);
  $("lead").textContent = dept.lead || "—";
  $("assist").textContent = assist.length ? assist.join("、") : "—";
  showEvidence(a.evidence, text, title);
  showPlace(a.jurisdiction);
  $("fix-topic").value = a.topic;
  fillSubs(a.topic, a.sub);
  $("fix-lead").value = dept.lead || "";
  $("fix-assist").value = assist.join("，");
  $("version").textContent = "模型 " + a.model_version;
  setActionsEnabled(true);
}

$("classify-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const mine = ++generation;
  clearResult();  // the previous answer is gone before anything else happens
  const text = $("text").value, title = $("title").value;
  if (!text.trim() && !title.trim()) { formSay("请填写诉求内容或标题（至少一项）后再分类。", "error"); return; }
  const typedId = $("msgid").value.trim();
  // A generated id belongs to this message only: it is not written into the field, where the
  // next message would reuse it and its feedback would overwrite this one's.
  const id = typedId || "op-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
  const request = { text, title: title || null, channel: $("channel").value, id };
  $("classify").disabled = true; formSay("分类中…");
  try {
    const a = await call("/v1/classify", request);
    if (mine !== generation) return;
    sent = request;
    formSay("");
    show(a, text, title);
    say(typedId ? "" : "工单号 " + id);
  } catch (err) {
    if (mine !== generation) return;
    renderError($("classify-msg"), "无法分类：", err);
    updateCounter();  // a 413 may have told the configured limit
  } finally { if (mine === generation) $("classify").disabled = false; }
});

async function sendFeedback(topic, sub, lead, assist) {
  if (!answer || !sent) return;
  const body = {
    id: sent.id, topic, sub: sub || null, departments: { lead: lead || null, assist },
    text: sent.text, title: sent.title, channel: sent.channel,
    predicted_topic: answer.topic, model_version: answer.model_version,
  };
  try {
    const r = await call("/v1/feedback", body);
    say("已保存反馈 #" + r.feedback_id + "（" + topic + "）" + (body.id.startsWith("op-") ? "，工单号 " + body.id : ""), "done");
  }
  catch (err) { renderError($("status"), "反馈未保存：", err); }
}
$("confirm").addEventListener("click", () => {
  if (!answer) return;
  const dept = answer.departments || {};
  sendFeedback(answer.topic, answer.sub, dept.lead, listOf(dept.assist));
});
$("correct").addEventListener("click", () => {
  if (!answer) return;
  const assist = $("fix-assist").value.split(/[,，、;；]/).map((s) => s.trim()).filter(Boolean);
  sendFeedback($("fix-topic").value, $("fix-sub").value, $("fix-lead").value.trim(), assist);
});

setActionsEnabled(false);
updateCounter();
(async () => {
  try {
    taxonomy = await call("/v1/taxonomy", null, "GET");
    for (const t of listOf(taxonomy.topics)) {
      const o = document.createElement("option"); o.value = t.code; o.textContent = t.code + " " + t.name; $("fix-topic").appendChild(o);
    }
    const ready = await call("/readyz", null, "GET");
    $("version").textContent = "模型 " + ready.model_version;
  } catch (err) { renderError($("classify-msg"), "服务未就绪：", err); }
})();
