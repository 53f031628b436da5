import DOMPurify from 'dompurify';
import { Marked } from 'marked';

const marked = new Marked({ gfm: true, breaks: true, async: false });

// Links open beside the chat and tell the target nothing about it.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

/** Message text as HTML: Markdown rendered by marked, then sanitized by DOMPurify (no scripts, no handlers). */
export function renderMarkdown(text: string): string {
  return DOMPurify.sanitize(marked.parse(text) as string, {
    // Images would be requests to other hosts, which the page never makes.
    FORBID_TAGS: ['img', 'style', 'form', 'input', 'button', 'textarea', 'select'],
  });
}
