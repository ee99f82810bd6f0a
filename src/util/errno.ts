/** The errno code of a failed system call ('ENOENT', 'EXDEV', …), or undefined for any other error. */
export const errnoOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | null)?.code;
