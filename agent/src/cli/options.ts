/** Commander's collector for a repeatable option (`--pool A --pool B`). */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
