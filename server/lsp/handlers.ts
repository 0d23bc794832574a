import type { CancellationToken, Connection } from 'vscode-languageserver/node';
import type { NotificationMethod, Notifications, ParamsOf, RequestMethod, ResultOf } from '../protocol';
import { toResponseError } from './errors';

/**
 * Registers a handler for one of the protocol's custom requests, typed from its entry in the protocol's `Requests`
 * map. Whatever the handler throws reaches the client through toResponseError, the one place errors become codes.
 * Params come from the wire unchecked: handlers still validate them.
 */
export function onRequest<M extends RequestMethod>(
  connection: Connection,
  method: M,
  handler: (params: ParamsOf<M>, token: CancellationToken) => Promise<ResultOf<M>> | ResultOf<M>,
): void {
  connection.onRequest(method, async (params: ParamsOf<M>, token: CancellationToken): Promise<ResultOf<M>> => {
    try {
      return await handler(params, token);
    } catch (err) {
      throw toResponseError(err, token);
    }
  });
}

/** Sends one of the protocol's custom notifications, its params typed from the `Notifications` map. */
export function notify<M extends NotificationMethod>(connection: Connection, method: M, params: Notifications[M]): void {
  void connection.sendNotification(method, params);
}
