package com.weiyu.line.spring;

import com.weiyu.line.client.EventHandler;
import com.weiyu.line.v1.Event;
import com.weiyu.line.v1.EventType;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import org.springframework.aop.support.AopUtils;
import org.springframework.beans.BeansException;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.core.MethodIntrospector;
import org.springframework.core.annotation.AnnotatedElementUtils;
import org.springframework.util.ReflectionUtils;

/**
 * Collects {@link LineEventListener} methods of every bean and hands each event to them, after the
 * {@link EventHandler} beans, in registration order. It is itself the subscription's handler.
 */
public class LineEventDispatcher implements BeanPostProcessor {

  /** One handler with its type filter. */
  private record Target(String name, Set<EventType> types, EventHandler handler) {}

  private final List<Target> listeners = new ArrayList<>();
  private volatile List<EventHandler> handlerBeans = List.of();

  @Override
  public Object postProcessAfterInitialization(Object bean, String beanName) throws BeansException {
    Class<?> type = AopUtils.getTargetClass(bean);
    var methods =
        MethodIntrospector.selectMethods(
            type,
            (MethodIntrospector.MetadataLookup<LineEventListener>)
                m -> AnnotatedElementUtils.findMergedAnnotation(m, LineEventListener.class));
    methods.forEach((method, annotation) -> register(bean, beanName, method, annotation));
    return bean;
  }

  private void register(Object bean, String beanName, Method method, LineEventListener annotation) {
    if (method.getParameterCount() != 1 || !method.getParameterTypes()[0].equals(Event.class)) {
      throw new IllegalStateException(
          "@LineEventListener method "
              + beanName
              + "."
              + method.getName()
              + " must take exactly one com.weiyu.line.v1.Event");
    }
    Method invocable = AopUtils.selectInvocableMethod(method, bean.getClass());
    ReflectionUtils.makeAccessible(invocable);
    Set<EventType> types =
        annotation.types().length == 0
            ? Set.of()
            : EnumSet.copyOf(List.of(annotation.types()));
    EventHandler handler =
        event -> {
          try {
            invocable.invoke(bean, event);
          } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            if (cause instanceof Exception ex) {
              throw ex;
            }
            throw (Error) cause;
          }
        };
    synchronized (listeners) {
      listeners.add(new Target(beanName + "." + method.getName(), types, handler));
    }
  }

  /** The {@link EventHandler} beans, called before the listener methods. */
  void setHandlerBeans(List<EventHandler> beans) {
    this.handlerBeans = List.copyOf(beans);
  }

  /** How many handlers and listener methods are registered. */
  public int size() {
    synchronized (listeners) {
      return handlerBeans.size() + listeners.size();
    }
  }

  /** Names of the registered listener methods ({@code bean.method}). */
  public List<String> listenerNames() {
    synchronized (listeners) {
      return listeners.stream().map(Target::name).toList();
    }
  }

  /** Hands {@code event} to every handler and matching listener; the first exception ends it. */
  public void dispatch(Event event) throws Exception {
    for (EventHandler handler : handlerBeans) {
      handler.handle(event);
    }
    List<Target> targets;
    synchronized (listeners) {
      targets = List.copyOf(listeners);
    }
    for (Target target : targets) {
      if (target.types().isEmpty() || target.types().contains(event.getType())) {
        target.handler().handle(event);
      }
    }
  }
}
