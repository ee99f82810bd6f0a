// The ways an image import is refused. They carry the HTTP status the API answers
// with (as every WorkrsError does); the API turns them into its own answers
// (src/api/backend.ts), so images depends on nothing of the API.
import { WorkrsError } from '../errors.js';
import { RESERVED_NAMESPACE } from './references.js';

/** A refusal of what the client sent: answered, not logged as a failure of the node. */
export class ImageError extends WorkrsError {
  constructor(code: string, status: number, message: string) {
    super(code, status, message);
    this.name = 'ImageError';
  }
}

/** 400 INVALID_IMAGE: the body is not a `docker save` tar the nodes can load. */
export class InvalidImageError extends ImageError {
  constructor(message: string) {
    super('INVALID_IMAGE', 400, message);
    this.name = 'InvalidImageError';
  }
}

/** 403 IMAGE_RESERVED: the tar names an image of the nodes' own build (references.ts RESERVED_NAMESPACE). */
export class ImageReservedError extends ImageError {
  constructor(references: string[]) {
    super('IMAGE_RESERVED', 403, `${references.join(', ')}: references under ${RESERVED_NAMESPACE} name the images every node builds for itself; no import may provide them, with replace or not. Save the image under another name`);
    this.name = 'ImageReservedError';
  }
}

/** 409 IMAGE_EXISTS: an import without replace names a reference that names other bytes. */
export class ImageExistsError extends ImageError {
  constructor(message: string) {
    super('IMAGE_EXISTS', 409, `${message}. Import with replace (POST /v1/images?replace=1, workrs images import --replace) to move the name to this image`);
    this.name = 'ImageExistsError';
  }
}
