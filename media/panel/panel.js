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

  function startExchange(id, question) {
    const box = el('article', 'exchange running');
    box.dataset.id = String(id);
    box.appendChild(el('h2', 'question', question));
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
    exchanges.set(id, { box, answer, state, cancel, copy, insert, text: '' });
  }

  // Each committed block arrives as the whole answer so far; show only the new part as a fresh block.
  function showText(id, text, block) {
    const x = exchanges.get(id);
    if (!x) return;
    if (text.startsWith(x.text)) {
      const added = text.slice(x.text.length);
      if (added) {
        const span = el('span', 'block fresh', added);
        if (block !== undefined) span.dataset.block = String(block);
        x.answer.appendChild(span);
        setTimeout(() => span.classList.remove('fresh'), 600);
      }
    } else {
      x.answer.textContent = '';
      x.answer.appendChild(el('span', 'block', text));
    }
    x.text = text;
    x.box.scrollIntoView({ block: 'nearest' });
    if (block !== undefined) x.state.textContent = `Block ${block + 1}…`;
  }

  function finish(id, cls, stateText) {
    const x = exchanges.get(id);
    if (!x) return;
    x.box.classList.remove('running');
    x.box.classList.add(cls);
    x.answer.setAttribute('aria-busy', 'false');
    x.state.textContent = stateText;
    x.cancel.hidden = true;
    x.copy.disabled = x.insert.disabled = !x.text;
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
        break;
      case 'awaitPaste':
        $('pastezone').hidden = false;
        $('pastezone').focus();
        break;
      case 'start':
        startExchange(m.id, m.question);
        break;
      case 'partial':
        showText(m.id, m.text, m.block);
        break;
      case 'done':
        showText(m.id, m.text);
        finish(m.id, 'done', m.stats || 'Done');
        break;
      case 'cancelled':
        finish(m.id, 'cancelled', 'Cancelled');
        break;
      case 'error':
        finish(m.id, 'failed', m.message);
        break;
    }
  });

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
