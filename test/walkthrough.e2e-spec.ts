import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshDatabaseUrl, onPostgres } from './helpers/database-target';
import { RunningServer, startServer } from './helpers/server-process';
import { type FakeLlm, startFakeLlm } from './support/fake-llm';

const README = join(__dirname, '..', 'README.md');
jest.setTimeout(60_000);

interface Step {
  /** The command as the README writes it (continuation lines joined). */
  command: string;
  /** The status the README announces with a trailing `# 404`; otherwise any 2xx. */
  expected?: number;
  /** The top-level keys a `# {…}` comment right after the command shows for its response. */
  shownKeys?: string[];
  /** `S=…`: a variable to set from the id of the previous response. */
  assigns?: string;
}

/** A README walk-through, as steps: the first bash block after `heading`. */
function walkThrough(heading = '## Walk-through'): Step[] {
  const readme = readFileSync(README, 'utf8');
  const section = readme.slice(readme.indexOf(heading));
  const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const steps: Step[] = [];
  const lines = block.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const last = steps.at(-1);
      // A response sample starts right after its command, on a comment line opening with { or [.
      if (last && /^# [{[]/.test(line) && lines[i - 1] && !lines[i - 1].startsWith('#')) {
        let sample = line;
        while (lines[i + 1]?.startsWith('#  ')) sample += lines[++i];
        last.shownKeys = [...sample.matchAll(/"(\w+)":/g)].map((m) => m[1]);
      }
      continue;
    }
    const assignment = /^([A-Z]+)=\S+/.exec(line);
    if (assignment) {
      steps.push({ command: line, assigns: assignment[1] });
      continue;
    }
    while (line.endsWith('\\')) line = `${line.slice(0, -1).trimEnd()} ${lines[++i].trim()}`;
    const announced = /#\s*(\d{3})\s*$/.exec(line);
    steps.push({ command: line, expected: announced ? Number(announced[1]) : undefined });
  }
  return steps;
}

function run(
  command: string,
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-c', command],
      { cwd, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * Runs `steps` in `dir` against `server` as a reader would, each curl checked against the status
 * it announces (else any 2xx) and its sample's keys; `X=…` takes the id of the response before it
 * (a JSON body's, or an event stream's `message` event's).
 */
async function runSteps(steps: Step[], server: RunningServer, dir: string) {
  const env: Record<string, string> = {};
  let lastId: string | undefined;
  const results: { command: string; status: number; expected: string; code: number }[] = [];
  for (const step of steps) {
    if (step.assigns) {
      if (lastId === undefined) throw new Error(`${step.command}: no id before it`);
      env[step.assigns] = lastId;
      continue;
    }
    const command = step.command
      .replace(/^curl /, `curl -w '%{stderr}HTTP_STATUS %{http_code}\\n' `)
      .replaceAll('localhost:8000', server.base.replace('http://', ''));
    const { code, stdout, stderr } = await run(command, dir, env);
    const status = Number(/HTTP_STATUS (\d+)/.exec(stderr)?.[1] ?? 0);
    const ok = step.expected ? status === step.expected : status >= 200 && status < 300;
    results.push({
      command: step.command,
      status,
      expected: step.expected ? String(step.expected) : '2xx',
      code,
    });
    expect({ command: step.command, ok, code, stderr: code === 0 ? '' : stderr }).toEqual({
      command: step.command,
      ok: true,
      code: 0,
      stderr: '',
    });
    const body = stdout.slice(stdout.indexOf('\r\n\r\n') + 1).trim();
    const json: unknown = /^[{[]/.test(body) ? JSON.parse(body) : undefined;
    if (json && typeof json === 'object' && 'id' in json) lastId = String(json.id);
    const event = /^event: message\ndata: (.*)$/m.exec(body);
    if (event) lastId = String((JSON.parse(event[1]) as { id: number }).id);
    if (step.shownKeys && json && typeof json === 'object' && !Array.isArray(json)) {
      // The sample under a command shows every field the real response has.
      expect({
        command: step.command,
        missing: Object.keys(json).filter((k) => !step.shownKeys?.includes(k)),
      }).toEqual({
        command: step.command,
        missing: [],
      });
    }
  }
  return results;
}

describe('README walk-through (e2e)', () => {
  let server: RunningServer;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chat-walkthrough-'));
    const databaseUrl = onPostgres
      ? await freshDatabaseUrl('walkthrough')
      : `sqlite:${join(dir, 'chat.sqlite')}`;
    server = await startServer({ DATABASE_URL: databaseUrl });
    // The one file the reader brings: a ChatGPT data export's conversations.json.
    copyFileSync(
      join(__dirname, 'fixtures', 'chatgpt-conversations.json'),
      join(dir, 'conversations.json'),
    );
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses into the commands a reader runs', () => {
    const steps = walkThrough();
    expect(steps.filter((s) => s.command.startsWith('curl')).length).toBeGreaterThan(25);
    expect(steps.filter((s) => s.assigns).map((s) => s.assigns)).toEqual(['S', 'M']);
    expect(steps.every((s) => s.assigns || s.command.startsWith('curl '))).toBe(true);
  });

  it('runs top to bottom, every command answering as the README says', async () => {
    const results = await runSteps(walkThrough(), server, dir);
    expect(results.length).toBeGreaterThan(25);
  });
});

describe('README replies walk-through (e2e)', () => {
  const HEADING = '## Replies from a language model';
  let fake: FakeLlm;
  let server: RunningServer;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chat-replies-walkthrough-'));
    fake = await startFakeLlm();
    // The README's sample: a first delta of 12 characters, which its Last-Event-ID resumes after.
    fake.setDefault({ stream: ['Belém Tower,', ' the Jerónimos Monastery', ' and the castle.'] });
    const databaseUrl = onPostgres
      ? await freshDatabaseUrl('walkthrough_replies')
      : `sqlite:${join(dir, 'chat.sqlite')}`;
    server = await startServer({ DATABASE_URL: databaseUrl, LLM_BASE_URL: fake.baseUrl });
  });
  afterAll(async () => {
    await server?.stop();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses into the commands a reader runs', () => {
    const steps = walkThrough(HEADING);
    expect(steps.filter((s) => s.assigns).map((s) => s.assigns)).toEqual(['S', 'Q', 'M']);
    expect(steps.every((s) => s.assigns || s.command.startsWith('curl '))).toBe(true);
  });

  it('runs top to bottom: a streamed reply, its resume, a regenerated one', async () => {
    const results = await runSteps(walkThrough(HEADING), server, dir);
    expect(results.map((r) => r.status)).toEqual([201, 201, 200, 200, 201]);
    expect(fake.requests).toHaveLength(2);
    const [question, regenerate] = fake.requests.map((r) => r.body as Record<string, unknown>);
    expect(question).toMatchObject({
      temperature: 0.7,
      messages: [{ role: 'user', content: 'Name three Lisbon sights.' }],
    });
    expect(regenerate).toMatchObject({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'Name three Lisbon sights.' }],
    });
  });
});
