import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { ErrorCode, FtlError, runProgram } from '@ftl/shared';

/** Where Debian's chromium package puts the browser; FTL_CHROMIUM overrides it. */
export function chromiumPath(): string {
  return process.env['FTL_CHROMIUM'] ?? '/usr/bin/chromium';
}

/** What a headless browser saw of a report page. */
export interface RenderedReport {
  title: string;
  /** Inline SVG plots on the page, and tables. */
  svgs: number;
  tables: number;
  /** Console errors and failed requests while loading (a self-contained page has none). */
  errors: string[];
  /** Requests the page made other than for itself. */
  requests: string[];
}

/**
 * Opens a study's report.html in headless Chromium, records what it shows and what it asked for, and
 * writes a full-page screenshot (PNG) when `screenshot` is given.
 *
 * @example
 * const seen = await renderReport('.ftl/sim/study/report.html', 'docs/img/study.png');
 */
export async function renderReport(htmlFile: string, screenshot?: string): Promise<RenderedReport> {
  const executablePath = chromiumPath();
  if (!existsSync(executablePath)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `no browser at ${executablePath}; install Debian's chromium (apt-get install chromium) or set FTL_CHROMIUM`,
    );
  }
  const url = pathToFileURL(resolve(htmlFile)).href;
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('requestfailed', (r) => errors.push(`${r.url()}: ${r.failure()?.errorText ?? 'failed'}`));
    page.on('request', (r) => {
      if (r.url() !== url) requests.push(r.url());
    });
    await page.goto(url, { waitUntil: 'load' });
    const seen = {
      title: await page.title(),
      svgs: await page.locator('svg').count(),
      tables: await page.locator('table').count(),
      errors,
      requests,
    };
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    return seen;
  } finally {
    await browser.close();
  }
}

const HELP = `node simulations/dist/report-browser.js --report REPORT.html [--png OUT.png]
Opens a study report in headless Chromium (Debian's /usr/bin/chromium, or FTL_CHROMIUM), prints what the page
shows (plots, tables, errors, outside requests) and writes a full-page screenshot.`;

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runProgram({ help: HELP, flags: { report: { type: 'string' }, png: { type: 'string' } } }, async (flags) => {
    if (typeof flags['report'] !== 'string') return 'help';
    const png = typeof flags['png'] === 'string' ? flags['png'] : undefined;
    const seen = await renderReport(flags['report'], png);
    process.stdout.write(`${JSON.stringify({ ...seen, ...(png ? { screenshot: png } : {}) })}\n`);
    return undefined;
  });
}
