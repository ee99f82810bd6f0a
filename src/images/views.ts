// The images API's answers (POST and GET /v1/images) as plain shapes without
// dependencies: the node builds them, the CLI reads them.

/** The answer to POST /v1/images. */
export interface ImportResult {
  /** The references the tar provides, normalized; each now names this blob. */
  images: string[];
  blob: string;
  bytes: number;
  holders: string[];
}

/** A row of GET /v1/images. */
export interface ImageView {
  /** The reference; null for an imported blob whose references newer imports took. */
  name: string | null;
  blob: string;
  bytes: number;
  holders: string[];
  /** When the blob was first imported (ms since the epoch). */
  addedAt: number;
}
