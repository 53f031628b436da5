import type { FieldError } from '../common/problems/problem';
import { ValidationProblemException } from '../common/problems/validation.pipe';

/** A file with more problems than this lists the first ones: they are usually one mistake repeated. */
export const MAX_REPORTED_PROBLEMS = 20;

/** The problems found in an import file; any problem means nothing is imported. */
export class ImportProblems {
  private readonly errors: FieldError[] = [];
  private more = false;

  add(field: string, message: string): void {
    if (this.errors.length < MAX_REPORTED_PROBLEMS) this.errors.push({ field, message });
    else this.more = true;
  }

  /** True once more problems were found than are reported: checking further changes nothing. */
  get full(): boolean {
    return this.more;
  }

  get count(): number {
    return this.errors.length;
  }

  /** Throws the 400 naming every problem found, if there is one. */
  throwIfAny(): void {
    if (this.errors.length === 0) return;
    const errors = this.more
      ? [
          ...this.errors,
          {
            field: 'body',
            message: `more than ${MAX_REPORTED_PROBLEMS} problems; only the first ${MAX_REPORTED_PROBLEMS} are listed`,
          },
        ]
      : this.errors;
    throw new ValidationProblemException(errors, 'Nothing was imported');
  }
}
