// Where a rule applies: events are routed to rules by (category, product); a rule that leaves one out
// applies to every value of it.

export function routeKey(category: string | undefined, product: string | undefined): string {
  return `${category ?? '*'}\0${product ?? '*'}`;
}

/** The routes an event of this category and product takes, most specific first. */
export function routeKeys(category: string, product: string): string[] {
  return [routeKey(category, product), routeKey(category, undefined), routeKey(undefined, product), routeKey(undefined, undefined)];
}
