package com.weiyu.line.spring;

import com.weiyu.line.client.EventHandler;
import com.weiyu.line.client.LineAdapterClient;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.context.annotation.Bean;

/**
 * The {@link LineAdapterClient} from {@code line-adapter.*}; with {@code line-adapter.consumer},
 * a durable subscription for the {@link EventHandler} beans and {@link LineEventListener} methods,
 * run with the context.
 */
@AutoConfiguration
@ConditionalOnClass(LineAdapterClient.class)
@EnableConfigurationProperties(LineAdapterProperties.class)
public class LineAdapterAutoConfiguration {

  /** The client; closed with the context. */
  @Bean(destroyMethod = "close")
  @ConditionalOnMissingBean
  public LineAdapterClient lineAdapterClient(LineAdapterProperties properties) {
    LineAdapterClient.Builder builder =
        LineAdapterClient.builder()
            .address(properties.getAddress())
            .apiKey(properties.getApiKey())
            .callTimeout(properties.getCallTimeout())
            .sendTimeout(properties.getSendTimeout())
            .sendRetry(
                properties.getSendMaxAttempts(),
                java.time.Duration.ofMillis(200),
                java.time.Duration.ofSeconds(5));
    LineAdapterProperties.Tls tls = properties.getTls();
    if (tls.isEnabled()) {
      builder.tls();
    }
    if (tls.getTrustCertificates() != null) {
      builder.tlsTrustCertificates(tls.getTrustCertificates());
    }
    if (tls.getClientCertificate() != null && tls.getClientKey() != null) {
      builder.tlsClientCertificate(tls.getClientCertificate(), tls.getClientKey());
    }
    if (tls.getAuthority() != null && !tls.getAuthority().isBlank()) {
      builder.authority(tls.getAuthority());
    }
    return builder.build();
  }

  /** Finds {@link LineEventListener} methods (static: it post-processes the other beans). */
  @Bean
  @ConditionalOnMissingBean
  public static LineEventDispatcher lineEventDispatcher() {
    return new LineEventDispatcher();
  }

  /** The subscription of {@code line-adapter.consumer}, started and stopped with the context. */
  @Bean
  @ConditionalOnMissingBean
  @ConditionalOnProperty(prefix = "line-adapter", name = "consumer")
  public LineEventSubscriptionLifecycle lineEventSubscription(
      LineAdapterClient client,
      LineAdapterProperties properties,
      LineEventDispatcher dispatcher,
      ObjectProvider<EventHandler> handlers) {
    dispatcher.setHandlerBeans(handlers.orderedStream().toList());
    return new LineEventSubscriptionLifecycle(client, properties, dispatcher);
  }
}
