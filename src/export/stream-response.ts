import { Logger } from '@nestjs/common';
import type { Response } from 'express';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ExportStream } from './export.service';

const logger = new Logger('Export');

/**
 * Sends an export as a download, with backpressure: the next chunk is produced (and the next page
 * read) only when the socket has taken the previous one. A failure after the first byte cannot
 * become a problem document any more; the connection is cut so the client sees an incomplete
 * response rather than a short file that looks whole.
 */
export async function sendExport(res: Response, stream: ExportStream): Promise<void> {
  res.status(200);
  res.setHeader('Content-Type', stream.contentType);
  res.setHeader('Content-Disposition', `attachment; filename="${stream.filename}"`);
  try {
    await pipeline(Readable.from(stream.chunks), res);
  } catch (error) {
    res.destroy();
    const code = (error as { code?: string }).code;
    if (code === 'ERR_STREAM_PREMATURE_CLOSE') logger.warn('Export aborted by the client');
    else
      logger.error(
        `Export failed mid-stream: ${error instanceof Error ? error.stack : String(error)}`,
      );
  }
}
