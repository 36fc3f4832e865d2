/**
 * Hands out increasing ids (1, 2, 3…). A stack owns one for its stream connections, so ids are
 * unique across its transports (a response finds its connection, a registrar its flow) without a
 * counter hidden in a module that every stack in the process would share.
 */
export class IdSequence {
  private last = 0;

  next(): number {
    this.last += 1;
    return this.last;
  }
}
