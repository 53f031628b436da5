import { ValidationProblemException } from '../common/problems/validation.pipe';

/** The 400 for a message id, given in `field`, that names no message of the session. */
export function messageNotInSession(
  field: string,
  id: number | null,
  where = 'in this session',
): ValidationProblemException {
  return new ValidationProblemException([
    { field, message: `${field} names message ${id}, which is not ${where}` },
  ]);
}
