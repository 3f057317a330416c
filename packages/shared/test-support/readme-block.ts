import { readFile } from 'node:fs/promises';

/** The repository's README, beside the packages. */
const README = new URL('../../../README.md', import.meta.url);

/**
 * The code block of README.md between `<!-- name: … -->` and `<!-- /name -->`, so a test runs the
 * README's example exactly as a reader copies it.
 *
 * @example
 * const js = await readmeBlock('load-export', 'js');
 */
export async function readmeBlock(name: string, language: string): Promise<string> {
  const readme = await readFile(README, 'utf8');
  const m = new RegExp(`<!-- ${name}:[^>]*-->\\s*\`\`\`${language}\\n([\\s\\S]*?)\`\`\`\\s*<!-- /${name} -->`).exec(readme);
  if (!m) throw new Error(`README.md has no \`\`\`${language} block between <!-- ${name}: … --> and <!-- /${name} -->`);
  return m[1]!;
}
