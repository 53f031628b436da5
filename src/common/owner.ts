/**
 * The owner every request acts as while there is no authentication (`AUTH_MODE=none`).
 * TODO(issue 7): controllers take the caller's owner from the API key instead of this constant.
 */
export const LOCAL_OWNER = 'local';
