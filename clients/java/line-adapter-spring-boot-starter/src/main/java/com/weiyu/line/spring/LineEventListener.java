package com.weiyu.line.spring;

import com.weiyu.line.v1.EventType;
import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks a bean method that handles events of the application's durable consumer ({@code
 * line-adapter.consumer}). The method takes one {@link com.weiyu.line.v1.Event}; what it returns
 * is ignored.
 *
 * <pre>{@code
 * @Component
 * class Desk {
 *   @LineEventListener(types = EventType.EVENT_TYPE_MESSAGE)
 *   void onMessage(Event event) { ... }
 * }
 * }</pre>
 *
 * <p>Events come one at a time in sequence order; the event is acknowledged after every listener
 * and {@link com.weiyu.line.client.EventHandler} bean returned. An exception stops the
 * subscription without acknowledging that event (the health indicator turns DOWN), so it is
 * handed over again after a restart. See {@link com.weiyu.line.client.EventSubscription} for the
 * delivery guarantee.
 */
@Target(ElementType.METHOD)
@Retention(RetentionPolicy.RUNTIME)
@Documented
public @interface LineEventListener {

  /** Only events of these types reach the method; empty: every event of the subscription. */
  EventType[] types() default {};
}
