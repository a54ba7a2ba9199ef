// The full-screen client for real: `obrol join` on a tmux terminal against a real server, typed into
// with send-keys and read back with capture-pane.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { CLI, join, startServer, tempDir } from './helpers/cli.js';
import { OriginalClient, OriginalServer } from './helpers/original.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
// CI installs tmux (.ci/run); a developer machine without it skips, saying why.
const skip = !hasTmux && !process.env.CI ? 'tmux is not installed' : false;

/** A private tmux server (its own socket, so we only ever touch our own) with one session, "c". */
function tmuxTerminal(sock: string) {
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
  const screen = (): string => tmux('capture-pane', '-p', '-t', 'c');
  return {
    tmux,
    start: (cmd: string): void => void tmux('new-session', '-d', '-s', 'c', '-x', '80', '-y', '24', cmd),
    keys: (...k: string[]): void => void tmux('send-keys', '-t', 'c', ...k),
    type: (text: string): void => void tmux('send-keys', '-t', 'c', '-l', text),
    async waitScreen(re: RegExp, what: string, ms = 10_000): Promise<string> {
      const end = Date.now() + ms;
      for (;;) {
        const s = screen();
        if (re.test(s)) return s;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what} (${re});\nscreen:\n${s}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    kill: (): void => void spawnSync('tmux', ['-L', sock, 'kill-server']),
  };
}

test('full-screen client in tmux: layout, sending, highlights, completion, windows, resize, pending, quit', { timeout: 90_000, skip }, async () => {
  const server = await startServer();
  const sock = `obrol-test-${process.pid}`;
  const cfg = tempDir();
  const { tmux, start, keys, type, waitScreen, kill } = tmuxTerminal(sock);
  try {
    const cmd = `OBROL_CONFIG_DIR='${cfg.path}' NO_COLOR=1 '${process.execPath}' '${CLI}' join alice@127.0.0.1:${server.port}; echo "EXIT=$?"; sleep 30`;
    start(cmd);
    let s = await waitScreen(/alice has joined #lobby/, 'the join');
    const lines = s.split('\n');
    assert.match(lines[0]!, /^#lobby: \(no topic\)/, 'topic bar on top');
    assert.match(s, /\[alice\] \[127\.0\.0\.1:\d+.*\] \[2:#lobby\]/, 'status bar: name, server, window');
    assert.match(s, /│ alice/, 'member list');

    const bob = join('bob', server.port);
    await bob.waitFor('bob has joined the chat');
    bob.send('hello alice, are you there?');
    await waitScreen(/<bob> hello alice, are you there\?/, 'a message from bob');
    await waitScreen(/│ +bob/, 'bob in the member list');

    type('hi bob 👋 日本語');
    keys('Enter');
    await bob.waitFor('alice: hi bob 👋 日本語');
    await waitScreen(/<alice> hi bob 👋 日本語/, 'own message confirmed');

    // Tab completes a name with ": " at the start of the line.
    type('bo');
    keys('Tab');
    await waitScreen(/^\[#lobby\] bob:\s*$/m, 'completion');
    type('thanks');
    keys('Enter');
    await bob.waitFor('alice: bob: thanks');

    // Up recalls the last line.
    keys('Up');
    await waitScreen(/\[#lobby\] bob: thanks/, 'input history');
    keys('C-u');

    // A second window; activity in the first shows in the status bar.
    type('/join #dev');
    keys('Enter');
    s = await waitScreen(/\[3:#dev\]/, 'the #dev window');
    assert.match(s.split('\n')[0]!, /^#dev: \(no topic\)/);
    bob.send('alice: ping');
    await waitScreen(/\[Act: 2\*\]/, 'a highlight in window 2');
    keys('M-2');
    s = await waitScreen(/\[2:#lobby\]/, 'Alt+2');
    assert.match(s, /─+ new[^\n]*\n[^\n]*<bob> alice: ping/, 'the unread marker sits above the first unseen line');

    // Resize: the layout follows.
    tmux('resize-window', '-t', 'c', '-x', '60', '-y', '16');
    s = await waitScreen(/^\[\d\d:\d\d\] \[alice\].{0,40}\n\[#lobby\] *$/m, 'the status bar after resize');
    assert.ok(s.split('\n').every((l) => l.length <= 60), 'nothing wider than the terminal');

    // A server that stops answering: the state shows, typed text waits as pending, then goes.
    server.p.kill('SIGSTOP');
    type('sent while the server is frozen');
    keys('Enter');
    await waitScreen(/UNRESPONSIVE|RECONNECTING|pending 1/, 'the connection state', 15_000);
    server.p.kill('SIGCONT');
    await bob.waitFor('alice: sent while the server is frozen', 20_000);
    s = await waitScreen(/<alice> sent while the server is[^\n]*\n +frozen/, 'the message, wrapped under its text', 20_000);
    await waitScreen(/^(?![\s\S]*pending \d)[\s\S]*\[2:#lobby\]/, 'nothing pending any more', 20_000);

    type('/quit bye');
    keys('Enter');
    await bob.waitFor('alice has left the chat (bye)');
    await waitScreen(/EXIT=0/, 'a clean exit on the restored screen');
    bob.end();
    await bob.exited;
  } finally {
    kill();
    server.p.kill('SIGCONT');
    await server.stop();
    cfg.remove();
  }
});

test('full-screen client with --legacy on an original server: a taken name asks for another, then chat', { timeout: 60_000, skip }, async () => {
  const srv = await OriginalServer.start();
  const orig = await OriginalClient.open(srv.port);
  const sock = `obrol-test-l-${process.pid}`;
  const cfg = tempDir();
  const { start, keys, type, waitScreen, kill } = tmuxTerminal(sock);
  try {
    assert.equal(await orig.join('orig'), 'joined');
    const cmd = `OBROL_CONFIG_DIR='${cfg.path}' NO_COLOR=1 '${process.execPath}' '${CLI}' join --legacy orig@127.0.0.1:${srv.port}; echo "EXIT=$?"; sleep 30`;
    start(cmd);
    await waitScreen(/another name: *$/m, 'the question for another name');
    type('leo');
    keys('Enter');
    await waitScreen(/leo has joined #lobby/, 'the full screen');
    await orig.waitFor('leo has joined the chat');
    orig.send('hi leo 👋');
    await waitScreen(/<orig> hi leo 👋/, 'the original client\'s line');
    type('halo 日本');
    keys('Enter');
    await orig.waitFor('leo: halo 日本');
    keys('C-c');
    keys('C-c');
    await waitScreen(/EXIT=0/, 'Ctrl+C twice exits cleanly');
  } finally {
    kill();
    await orig.close();
    await srv.close();
    cfg.remove();
  }
});
