/* global acquireVsCodeApi, document, window, FileReader */
// Answer panel script (runs in the webview; no network, no inline code: see the CSP in answerPanel.ts).
(function () {
  'use strict';
  const vscode = acquireVsCodeApi();
  const $ = (id) => document.getElementById(id);
  const exchanges = new Map();

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Generation can be faster than the eye: a short answer's blocks may all arrive within a few milliseconds. Each
  // update is queued and shown for at least a moment, so the block-by-block forming is visible on every answer; the
  // model is never waited for (it has finished or moved on), only the drawing catches up.
  const HOLD_MS = { block: 180, step: 60 };

  function button(text, cls, action) {
    const b = el('button', cls, text);
    b.addEventListener('click', () => vscode.postMessage({ type: 'command', command: action.command, args: action.args }));
    return b;
  }

  function startExchange(id, question, demo) {
    const box = el('article', 'exchange running');
    box.dataset.id = String(id);
    const head = el('h2', 'question', question);
    if (demo) head.appendChild(el('span', 'badge demo', 'demo model'));
    box.appendChild(head);
    const answer = el('div', 'answer');
    answer.setAttribute('aria-busy', 'true');
    box.appendChild(answer);
    const bar = el('div', 'actions');
    const state = el('span', 'state', 'Thinking…');
    const cancel = el('button', 'secondary cancel', 'Cancel');
    cancel.addEventListener('click', () => vscode.postMessage({ type: 'cancel', id }));
    const copy = el('button', 'secondary copy', 'Copy');
    copy.addEventListener('click', () => vscode.postMessage({ type: 'copy', id }));
    const insert = el('button', 'insert', 'Insert at Cursor');
    insert.addEventListener('click', () => vscode.postMessage({ type: 'insert', id }));
    copy.disabled = insert.disabled = true;
    bar.append(state, cancel, copy, insert);
    box.appendChild(bar);
    $('exchanges').append(box);
    box.scrollIntoView({ block: 'nearest' });
    exchanges.set(id, { box, answer, state, cancel, copy, insert, text: '', forming: undefined, queue: [], timer: undefined });
  }

  function enqueue(id, op) {
    const x = exchanges.get(id);
    if (!x) return;
    // Far behind (a long answer on a fast machine): drop queued step views, keep every committed block.
    if (x.queue.length > 4) x.queue = x.queue.filter((o) => o.kind !== 'step');
    x.queue.push(op);
    pump(x);
  }

  function pump(x) {
    if (x.timer !== undefined) return;
    const op = x.queue.shift();
    if (!op) return;
    render(x, op);
    const hold = HOLD_MS[op.kind];
    if (hold === undefined) return pump(x);
    x.timer = setTimeout(() => {
      x.timer = undefined;
      pump(x);
    }, x.queue.length > 8 ? hold / 3 : hold);
  }

  function render(x, op) {
    switch (op.kind) {
      case 'block':
        showText(x, op.text, op.block);
        break;
      case 'step':
        showText(x, op.text);
        showForming(x, op.blockText, op.block, op.step);
        break;
      case 'done':
        showText(x, op.text);
        finish(x, 'done', op.stats || 'Done');
        if (op.empty) showEmpty(x, op.empty);
        break;
      case 'cancelled':
        finish(x, 'cancelled', 'Cancelled');
        break;
      case 'error':
        finish(x, 'failed', op.message);
        if (op.action) x.state.after(button(op.action.title, 'fix', op.action));
        break;
    }
  }

  // Each committed block arrives as the whole answer so far; show only the new part as a fresh block.
  function showText(x, text, block) {
    if (x.forming && block !== undefined) {
      x.forming.remove();
      x.forming = undefined;
    }
    if (text.startsWith(x.text)) {
      const added = text.slice(x.text.length);
      if (added) {
        const span = el('span', 'block fresh', added);
        if (block !== undefined) span.dataset.block = String(block);
        x.answer.insertBefore(span, x.forming || null);
        setTimeout(() => span.classList.remove('fresh'), 600);
      }
    } else {
      x.answer.textContent = '';
      x.forming = undefined;
      x.answer.appendChild(el('span', 'block', text));
    }
    x.text = text;
    x.box.scrollIntoView({ block: 'nearest' });
    if (block !== undefined) x.state.textContent = `Block ${block + 1} committed…`;
  }

  // The block being denoised, still-masked positions included (shown only when the user asked for steps).
  function showForming(x, blockText, block, step) {
    if (!x.forming) {
      x.forming = el('span', 'forming');
      x.answer.appendChild(x.forming);
    }
    x.forming.textContent = blockText;
    x.state.textContent = `Block ${block + 1}, step ${step + 1}…`;
  }

  function finish(x, cls, stateText) {
    if (x.forming) {
      x.forming.remove();
      x.forming = undefined;
    }
    x.box.classList.remove('running');
    x.box.classList.add(cls);
    x.answer.setAttribute('aria-busy', 'false');
    x.state.textContent = stateText;
    x.cancel.hidden = true;
    x.copy.disabled = x.insert.disabled = !x.text.trim();
  }

  function showEmpty(x, empty) {
    x.box.classList.add('empty');
    const note = el('div', 'empty-note');
    note.appendChild(el('p', undefined, empty.headline));
    const row = el('div', 'suggestions');
    for (const s of empty.suggestions) row.appendChild(button(s.title, 'secondary', s));
    note.appendChild(row);
    x.answer.after(note);
  }

  window.addEventListener('message', (event) => {
    const m = event.data;
    switch (m.type) {
      case 'image':
        $('image').src = m.src;
        $('image').alt = m.label;
        $('caption').textContent = m.label;
        $('figure').hidden = false;
        $('pastezone').hidden = true;
        $('ask').hidden = false;
        $('steps-toggle').hidden = false;
        break;
      case 'awaitPaste':
        $('pastezone').hidden = false;
        $('pastezone').focus();
        break;
      case 'demo':
        $('demo').hidden = !m.on;
        $('demo-summary').textContent = m.summary;
        $('demo-hint').textContent = m.hint;
        $('show-steps').checked = !!m.showSteps;
        break;
      case 'start':
        startExchange(m.id, m.question, m.demo);
        break;
      case 'partial':
        enqueue(m.id, { kind: 'block', text: m.text, block: m.block });
        break;
      case 'step':
        enqueue(m.id, { kind: 'step', text: m.text, blockText: m.blockText, block: m.block, step: m.step });
        break;
      case 'done':
        enqueue(m.id, { kind: 'done', text: m.text, stats: m.stats, empty: m.empty });
        break;
      case 'cancelled':
        enqueue(m.id, { kind: 'cancelled' });
        break;
      case 'error':
        enqueue(m.id, { kind: 'error', message: m.message, action: m.action });
        break;
    }
  });

  for (const b of document.querySelectorAll('#demo button[data-command]')) {
    b.addEventListener('click', () => vscode.postMessage({ type: 'command', command: b.dataset.command }));
  }
  $('show-steps').addEventListener('change', () => vscode.postMessage({ type: 'showSteps', on: $('show-steps').checked }));

  $('ask').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = $('question').value.trim();
    if (!q) return;
    $('question').value = '';
    vscode.postMessage({ type: 'ask', question: q });
  });

  function sendImageFile(file) {
    if (!file || !/^image\//.test(file.type)) return false;
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      vscode.postMessage({ type: 'pastedImage', mime: file.type, name: file.name || undefined, base64: url.slice(url.indexOf(',') + 1) });
    };
    reader.readAsDataURL(file);
    return true;
  }

  document.addEventListener('paste', (e) => {
    if ($('pastezone').hidden) return;
    for (const item of e.clipboardData ? e.clipboardData.items : []) {
      if (item.kind === 'file' && sendImageFile(item.getAsFile())) {
        e.preventDefault();
        return;
      }
    }
  });
  document.addEventListener('dragover', (e) => { if (!$('pastezone').hidden) e.preventDefault(); });
  document.addEventListener('drop', (e) => {
    if ($('pastezone').hidden) return;
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files[0];
    sendImageFile(f);
  });

  vscode.postMessage({ type: 'ready' });
})();
