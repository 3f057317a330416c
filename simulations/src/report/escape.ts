const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Text made safe inside an XML or HTML element or a quoted attribute. Method names, dataset names and
 * failure messages come from configs and errors: none of them may open a tag. Control characters that
 * XML 1.0 cannot carry at all, even escaped, are dropped.
 *
 * @example
 * escapeMarkup('<script>'); // '&lt;script&gt;'
 */
export function escapeMarkup(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '').replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}
