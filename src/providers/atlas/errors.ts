/**
 * The words users read when Atlas Cloud says no. Each message says what happened, during
 * which step, the service's own text, and what to do; none carries the key.
 */
import { ProviderError } from '../types'
import { RequestTimeoutError } from './abort'

export interface ErrorContext {
  /** What we were doing, e.g. "submitting a prediction", "polling prediction `pred_1`". */
  action: string
  predictionId?: string
}

/** The closing advice of messages about failures that running again later may cure. */
const LATER = "The fault is on the service's side; run again later."
const NETWORK = 'Check the network and `ATLASCLOUD_BASE_URL`, then run again.'
const NETWORK_TIMEOUT = 'Check the network, then run again.'

/** Texts that mean the account has no money left, whatever the status says. */
const OUT_OF_CREDIT = /insufficient|balance/i
const MAX_TEXT_LENGTH = 500

/**
 * A refusal by the service: an HTTP status, or an envelope `code` under HTTP 200
 * (`label` tells which, e.g. `HTTP 401` or `code 401`).
 */
export function answerError(status: number | undefined, label: string, text: string | undefined, ctx: ErrorContext): ProviderError {
  const said = `(${label}${text ? `: ${clip(text)}` : ''})`
  const at = `while ${ctx.action} ${said}`
  const details = { predictionId: ctx.predictionId, status, retryable: false }
  const fail = (message: string, retryable = false) =>
    new ProviderError(`[imagegen] ${message}`, { ...details, retryable })
  const failOver = (message: string) => new ProviderError(`[imagegen] ${message}`, { ...details, predictionOver: true })

  if (status === 401)
    return fail(`Atlas Cloud rejected the API key ${at}. Check that \`ATLASCLOUD_API_KEY\` holds a valid key.`)
  if (status === 402 || ((status === undefined || status < 500) && text && OUT_OF_CREDIT.test(text)))
    return fail(`the Atlas Cloud account is out of credit ${at}. Add credit to the account, then run again.`)
  if (status === 403)
    return fail(`Atlas Cloud refused the request ${at}. Check that the account behind \`ATLASCLOUD_API_KEY\` may use this model.`)
  if (status === 422)
    return fail(`Atlas Cloud rejected the parameters ${at}. Check the image spec's fields and \`input\`.`)
  if (status === 429)
    return fail(`Atlas Cloud is rate limiting requests ${at}. Run again in a while, or lower \`concurrency\`.`, true)
  if (status !== undefined && status >= 500)
    return fail(`Atlas Cloud failed ${at}. ${LATER}`, true)
  if (status === 404 && ctx.predictionId)
    return failOver(`Atlas Cloud does not know prediction \`${ctx.predictionId}\` ${said}; outputs and predictions expire after about 14 days. Run again to generate the image afresh.`)
  return fail(`Atlas Cloud gave an unexpected answer ${at}. Check the image spec, and that \`ATLASCLOUD_BASE_URL\` (if set) points at the Atlas Cloud API.`)
}

/** A prediction that ended without an image. */
export function predictionFailed(predictionId: string | undefined, status: string | undefined, text: string | undefined): ProviderError {
  const ended = !status || status.toLowerCase() === 'failed' ? 'failed' : `ended as \`${status}\``
  const id = predictionId ? ` \`${predictionId}\`` : ''
  return new ProviderError(`[imagegen] Atlas Cloud prediction${id} ${ended}: ${clip(text ?? 'no reason given').replace(/[.\s]+$/, '')}. Change the prompt or parameters if the service refused them; otherwise run again.`, {
    predictionId,
    retryable: false,
    predictionOver: true,
  })
}

/**
 * A request that never got an answer. Only the error code is kept: undici's own message
 * and stack say nothing a user can act on.
 */
export function transportError(error: unknown, target: string, ctx: ErrorContext): ProviderError {
  const details = { predictionId: ctx.predictionId, retryable: true }
  if (error instanceof RequestTimeoutError) {
    return new ProviderError(
      `[imagegen] ${target} did not answer within ${seconds(error.timeoutMs)} (while ${ctx.action}). ${NETWORK_TIMEOUT}`,
      details,
    )
  }
  if (error instanceof ProviderError) return error
  return new ProviderError(`[imagegen] cannot reach ${target}: ${errorCode(error)} (while ${ctx.action}). ${NETWORK}`, details)
}

/** The same failure with other advice, e.g. for a submit that must not simply be sent again. */
export function adviseInstead(error: ProviderError, advice: string, details: ProviderError['details']): ProviderError {
  let message = error.message
  for (const old of [LATER, NETWORK, NETWORK_TIMEOUT]) {
    if (message.endsWith(` ${old}`)) message = message.slice(0, -old.length - 1)
  }
  return new ProviderError(`${message} ${advice}`, details)
}

/** `ECONNREFUSED`, `UND_ERR_SOCKET`, … from the error or its cause. */
export function errorCode(error: unknown): string {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && code) return code
  }
  return error instanceof Error ? error.message.split('\n')[0]! : String(error)
}

/** Removes every occurrence of `secret` from a message, in case a service echoes it. */
export function redact(text: string, secret: string | undefined): string {
  if (!secret || secret.length < 4) return text
  return text.split(secret).join('***')
}

/** An answer too big to be one: read no further (an endless body would fill the memory). */
export function answerTooLarge(maxBytes: number, ctx: ErrorContext): ProviderError {
  return new ProviderError(
    `[imagegen] Atlas Cloud sent an answer larger than ${formatBytes(maxBytes)} (while ${ctx.action}); refusing to read it. ${LATER}`,
    { predictionId: ctx.predictionId, retryable: true },
  )
}

/** `900 KB`, `1.5 MB`. */
export function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Number((bytes / 1024 / 1024).toFixed(1))} MB` : `${Math.ceil(bytes / 1024)} KB`
}

/** `250ms`, `1.5s`, `300s`. */
export function seconds(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${Number((ms / 1000).toFixed(1))}s`
}

function clip(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim()
  return oneLine.length > MAX_TEXT_LENGTH ? `${oneLine.slice(0, MAX_TEXT_LENGTH)}…` : oneLine
}
