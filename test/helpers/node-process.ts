/**
 * Start a real nerve node as a child process (`nerve serve`), on a free port
 * read from its `listening` log line, never guessed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface NodeProcess {
  port: number;
  nodeId: string;
  /** http://127.0.0.1:port */
  url: string;
  /** ws://127.0.0.1:port/ws */
  wsUrl: string;
  child: ChildProcess;
  /** Every JSON log line the node printed so far. */
  logs: Array<Record<string, unknown>>;
  /** SIGTERM and wait for exit (SIGKILL after `timeoutMs`). Resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

export interface StartNodeOptions {
  /** Extra CLI flags, e.g. ['--rate-per-second', '5']. */
  args?: string[];
  env?: Record<string, string>;
  nodeId?: string;
  timeoutMs?: number;
  /** Address to listen on, and to reach the node at (`url`, `wsUrl`). Default 127.0.0.1. */
  host?: string;
  /** Command the node runs under, e.g. ['ip', 'netns', 'exec', name] (it must exec node, keeping the pid). Default none. */
  launcher?: string[];
}

export async function startNode(options: StartNodeOptions = {}): Promise<NodeProcess> {
  const nodeId = options.nodeId ?? `test-${Math.random().toString(36).slice(2, 8)}`;
  const args = [
    '--import',
    'tsx',
    'src/cli/main.ts',
    'serve',
    '--port',
    '0',
    '--host',
    options.host ?? '127.0.0.1',
    '--node-id',
    nodeId,
    '--log-level',
    'info',
    ...(options.args ?? []),
  ];
  const [command, ...prefix] = [...(options.launcher ?? []), process.execPath];
  const child = spawn(command, [...prefix, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-20_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${nodeId} did not start within ${options.timeoutMs ?? 15000} ms; stderr: ${stderr}`));
    }, options.timeoutMs ?? 15000);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'listening' && typeof entry.port === 'number') {
        clearTimeout(timer);
        resolve(entry.port);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node ${nodeId} exited with ${code} before listening; stderr: ${stderr}`));
    });
  });

  const stop = async (timeoutMs = 10_000): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return {
    port,
    nodeId,
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    wsUrl: `ws://${options.host ?? '127.0.0.1'}:${port}/ws`,
    child,
    logs,
    stop,
    kill,
    exited,
  };
}
