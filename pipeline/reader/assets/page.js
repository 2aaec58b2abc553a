const D = JSON.parse(document.getElementById('study').textContent);
const $ = id => document.getElementById(id);
const STORE = 'dentsynth-reader-study:' + D.study_id;
let S = {reader: '', pos: 0, answers: [], done: false};
let cur = {answer: null, confidence: null}, t0 = 0, ticker = null;

function save() { try { localStorage.setItem(STORE, JSON.stringify(S)); } catch (e) {} }
function load() { try { return JSON.parse(localStorage.getItem(STORE) || 'null'); } catch (e) { return null; } }
function show(id) { for (const s of ['start', 'trial', 'end']) $(s).classList.toggle('hide', s !== id); }

function begin(resume) {
  if (resume) { S = load(); }
  else {
    const r = $('reader').value.trim();
    if (!r) { $('reader').focus(); $('need').classList.remove('hide'); return; }
    S = {reader: r, pos: 0, answers: [], done: false};
  }
  save();
  if (S.done) return finish();
  show('trial'); present();
}
function present() {
  const it = D.items[S.pos];
  cur = {answer: null, confidence: null};
  $('img').src = it.img;
  if (D.display_width) $('img').style.width = D.display_width + 'px';
  $('progress').textContent = 'Image ' + (S.pos + 1) + ' of ' + D.n;
  $('comment').value = '';
  paint();
  t0 = performance.now();
  clearInterval(ticker);
  ticker = setInterval(() => { $('clock').textContent = Math.floor((performance.now() - t0) / 1000) + ' s'; }, 250);
  $('clock').textContent = '0 s';
  document.activeElement && document.activeElement.blur();
}
function paint() {
  for (const a of ['real', 'synthetic']) $('a-' + a).classList.toggle('on', cur.answer === a);
  for (let c = 1; c <= 5; c++) $('c-' + c).classList.toggle('on', cur.confidence === c);
  $('next').disabled = !(cur.answer && cur.confidence);
}
function setAnswer(a) { cur.answer = a; paint(); }
function setConf(c) { cur.confidence = c; paint(); }
function next() {
  if (!(cur.answer && cur.confidence)) return;
  const it = D.items[S.pos];
  S.answers.push({position: S.pos + 1, image_key: it.key, answer: cur.answer, confidence: cur.confidence,
                  seconds: Math.round((performance.now() - t0) / 100) / 10, comment: $('comment').value.trim(),
                  answered_at: new Date().toISOString()});
  S.pos += 1;
  if (S.pos >= D.n) { S.done = true; save(); return finish(); }
  save(); present();
}
function finish() {
  clearInterval(ticker);
  show('end');
  $('done-text').textContent = S.reader + ': all ' + S.answers.length + ' images rated. Thank you.';
}
const COLS = ['study_id', 'study', 'reader_id', 'position', 'image_key', 'answer', 'confidence', 'seconds', 'comment', 'answered_at'];
function rows() { return S.answers.map(a => Object.assign({study_id: D.study_id, study: D.name, reader_id: S.reader}, a)); }
function csvCell(v) { return '"' + String(v).replace(/"/g, '""') + '"'; }
function csvText() { return [COLS.join(',')].concat(rows().map(r => COLS.map(c => csvCell(r[c])).join(','))).join('\r\n') + '\r\n'; }
function jsonText() { return JSON.stringify({study_id: D.study_id, study: D.name, reader_id: S.reader, answers: rows()}, null, 1); }
function fileBase() { return D.name + '_' + S.reader.replace(/[^A-Za-z0-9_-]+/g, '_'); }
function download(ext) {
  const text = ext === 'csv' ? csvText() : jsonText();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], {type: ext === 'csv' ? 'text/csv' : 'application/json'}));
  a.download = fileBase() + '.' + ext;
  document.body.appendChild(a); a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
}
function hex(s) { const b = new Uint8Array(s.length / 2); for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(2 * i, 2), 16); return b; }
async function reveal() {
  const out = $('score');
  if (!(window.crypto && crypto.subtle)) { out.textContent = 'This browser cannot compute the score here: the study lead scores the downloaded file.'; return; }
  const pass = $('pass').value.toLowerCase().replace(/[^a-z0-9]/g, '');
  const enc = new TextEncoder();
  out.textContent = 'checking...';
  const base = await crypto.subtle.importKey('raw', enc.encode(pass), 'PBKDF2', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({name: 'PBKDF2', hash: 'SHA-256', salt: hex(D.salt), iterations: D.iterations}, base, 256);
  const key = await crypto.subtle.importKey('raw', bits, {name: 'HMAC', hash: 'SHA-256'}, false, ['sign']);
  const mac = async t => new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(t)));
  const check = Array.from((await mac('dentsynth-reader-study-check')).slice(0, 8)).map(x => x.toString(16).padStart(2, '0')).join('');
  if (check !== D.check) { out.textContent = 'Wrong passphrase.'; out.dataset.state = 'wrong'; return; }
  const truth = {};
  for (const it of D.items) truth[it.key] = (it.m ^ ((await mac(it.key))[0] & 1)) ? 'synthetic' : 'real';
  let right = 0, syn = 0, synRight = 0, real = 0, realRight = 0;
  for (const a of S.answers) {
    const t = truth[a.image_key], ok = a.answer === t;
    right += ok; if (t === 'synthetic') { syn++; synRight += ok; } else { real++; realRight += ok; }
  }
  const pct = x => (100 * x).toFixed(1) + '%';
  out.dataset.state = 'shown'; out.dataset.correct = right; out.dataset.n = S.answers.length;
  out.innerHTML = '<p class="big">Accuracy: <b id="acc">' + pct(right / S.answers.length) + '</b> (' + right + ' of ' + S.answers.length +
    ' right; chance is 50%)</p><table><tr><td>synthetic images called synthetic</td><td>' + synRight + ' of ' + syn +
    '</td></tr><tr><td>real images called real</td><td>' + realRight + ' of ' + real + '</td></tr></table>';
}
document.addEventListener('keydown', e => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;   // the browser's own shortcuts (reload, zoom) stay theirs
  const tag = (e.target && e.target.tagName) || '';
  if (!$('start').classList.contains('hide')) { if (e.key === 'Enter') { e.preventDefault(); begin(false); } return; }
  if (!$('end').classList.contains('hide')) { if (e.key === 'Enter' && e.target === $('pass')) { e.preventDefault(); reveal(); } return; }
  if (tag === 'INPUT') {
    if (e.key === 'Enter') { e.preventDefault(); next(); } else if (e.key === 'Escape') { e.target.blur(); }
    return;
  }
  const k = e.key.toLowerCase();
  if (k === 'r') setAnswer('real');
  else if (k === 's') setAnswer('synthetic');
  else if (k >= '1' && k <= '5' && k.length === 1) setConf(+k);
  else if (k === 'c') { e.preventDefault(); $('comment').focus(); }
  else if (k === 'enter') { e.preventDefault(); next(); }
});
$('go').onclick = () => begin(false);
$('resume').onclick = () => begin(true);
$('a-real').onclick = () => setAnswer('real');
$('a-synthetic').onclick = () => setAnswer('synthetic');
for (let c = 1; c <= 5; c++) $('c-' + c).onclick = () => setConf(c);
$('next').onclick = next;
$('dl-csv').onclick = () => download('csv');
$('dl-json').onclick = () => download('json');
$('show').onclick = reveal;
const saved = load();
if (saved && saved.reader) {
  $('resume-box').classList.remove('hide');
  $('resume').textContent = 'Resume as ' + saved.reader + ' (' + saved.answers.length + ' of ' + D.n + ' done)';
}
$('reader').focus();
