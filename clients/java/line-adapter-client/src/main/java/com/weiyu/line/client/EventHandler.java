package com.weiyu.line.client;

import com.weiyu.line.v1.Event;

/**
 * Handles one event of an {@link EventSubscription}.
 *
 * <p>Events arrive one at a time, in {@link Event#getSequence()} order, on the subscription's
 * own thread. The event is acknowledged (batched) after this method returns normally. Throwing
 * stops the subscription without acknowledging this event, so the next subscription with the same
 * consumer starts with it again.
 *
 * <p>In a Spring Boot application, a bean of this type (or a method annotated with
 * {@code @LineEventListener}) is registered with the starter's subscription.
 */
@FunctionalInterface
public interface EventHandler {

  /**
   * Processes one event. Returns when the event is done with (stored, forwarded, answered...).
   *
   * @param event the next event of the log that matches the subscription's filters
   * @throws Exception to stop the subscription; the event is not acknowledged
   */
  void handle(Event event) throws Exception;
}
